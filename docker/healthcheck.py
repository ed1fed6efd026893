"""Docker HEALTHCHECK: exit 0 when the local gunicorn answers GET /health with 200, 1 otherwise.

The Host header is the public domain, because ALLOWED_HOSTS holds only that name; the port is the one
gunicorn.conf.py binds (GUNICORN_BIND).
"""

import os
import sys
import urllib.error
import urllib.request

port = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000").rpartition(":")[2]
request = urllib.request.Request(f"http://127.0.0.1:{port}/health", headers={"Host": os.environ.get("DOMAIN", "")})
try:
    with urllib.request.urlopen(request, timeout=4) as response:
        sys.exit(0 if response.status == 200 else 1)
except (urllib.error.URLError, OSError) as error:
    print(f"health check failed: {error}", file=sys.stderr)
    sys.exit(1)
