"""Docker HEALTHCHECK: whether the container's gunicorn is alive. Exit 0 when it answers GET /health at
all, 200 (the database answers) or 503 (it does not, and postbacks go to the spool); 1 when it gives no
answer or another one.

Liveness, not the database's health: Traefik's docker provider leaves out a container that docker reports
unhealthy, so a database outage would take the only web container out of Traefik, which would then answer
the webhook URL itself, 404 or 503, and nothing would reach the spool. Which replica's database answers is
for the load balancer's own health check of /health to decide (docs/SCALING.md).

The Host header is the public domain, because ALLOWED_HOSTS holds only that name; the port is the one
gunicorn.conf.py binds (GUNICORN_BIND). /health answers within a connect and a read timeout (4 s) even
when the database hangs; docker gives the check 5 s.
"""

import os
import sys
import urllib.error
import urllib.request

ALIVE = (200, 503)

port = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000").rpartition(":")[2]
request = urllib.request.Request(f"http://127.0.0.1:{port}/health", headers={"Host": os.environ.get("DOMAIN", "")})
try:
    with urllib.request.urlopen(request, timeout=4.5) as response:
        status = response.status
except urllib.error.HTTPError as error:
    status = error.code
except (urllib.error.URLError, OSError) as error:
    print(f"health check failed: {error}", file=sys.stderr)
    sys.exit(1)
if status not in ALIVE:
    print(f"health check failed: /health answered {status}", file=sys.stderr)
sys.exit(0 if status in ALIVE else 1)
