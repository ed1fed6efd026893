#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "epnhook.settings")
    if sys.argv[1:2] == ["setup"]:
        # The wizard writes the first .env, so it must start before any SECRET_KEY exists; settings.py
        # reads this flag (and nothing from the command line) to let it.
        os.environ["SETUP_WIZARD"] = "1"
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
