"""Small builders shared by the tests."""

import os
import subprocess
import sys
from urllib.parse import urlencode

from orders.rawrequest import RawRequest
from partners.epn_bz import EpnBz

# The classic new order: EPN.bz's example postback (the README's too).
CLASSIC = EpnBz.example


def postback(**changes) -> dict:
    params = {**CLASSIC, **changes}
    return {k: v for k, v in params.items() if v is not None}


def raw_get(**changes) -> RawRequest:
    return RawRequest(partner="epn_bz", method="GET", query_string=urlencode(postback(**changes)))


def load_settings(*names: str, **environ: str) -> subprocess.CompletedProcess:
    """Import the real settings module in a fresh interpreter with only `environ` configured and
    print the settings `names` (default: the network ones), one per line."""
    env = {"PATH": os.environ.get("PATH", ""), "ENV_FILE": "", "SECRET_KEY": "x" * 50, **environ}
    names = names or ("TRUSTED_PROXIES", "WEBHOOK_ALLOWED_IPS")
    code = "import epnhook.settings as s\n" + "".join(f"print(s.{name})\n" for name in names)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60,
                          cwd=os.path.dirname(os.path.dirname(__file__)))
