"""Print a development `.env`: DEBUG on, a fresh secret key and a fresh webhook token.

Run by `make run` when no `.env` exists (`python -m epnhook.devenv > .env`). It imports nothing
from Django, because settings cannot load before the file it writes exists.
"""

import secrets


def main() -> None:
    print("# Development settings written by `make run`. Production: see .env.example / manage.py setup.")
    print("DEBUG=True")
    print(f"SECRET_KEY={secrets.token_urlsafe(50)}")
    print(f"WEBHOOK_SECRET_TOKEN={secrets.token_urlsafe(32)}")


if __name__ == "__main__":
    main()
