"""gunicorn settings for production (docker/ and `make bench` use this file).

Process-level knobs are read here from the environment because gunicorn reads this file before
Django starts; the application's own settings stay in epnhook/settings.py.
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
# Threaded workers: the arbiter's heartbeat is independent of request handling, so a long admin CSV
# stream is not killed as "hung", while `timeout` still catches a truly stuck worker.
# (gthread, whose 400 page for an unparsable request does not echo a token: epnhook/gunicorn_logging.py)
worker_class = "epnhook.gunicorn_logging.RedactingThreadWorker"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() + 1))
threads = int(os.environ.get("GUNICORN_THREADS", 4))
# Each worker holds at most this many connections (gunicorn's default is 1000), and keeps at most
# worker_connections - threads of them alive between requests; beyond that a response closes its
# connection. Without the cap the first worker to wake accepts most of a burst of keep-alive
# connections (a load balancer's or wrk's: 24/4/4 seen over 3 workers) and queues them behind its
# own threads while the other workers idle. A full worker stops accepting, so new connections go to
# the others; none waits longer than it would for a busy worker's thread.
worker_connections = threads * 3
# A postback answers within INGEST_DEADLINE (5 s) whatever the database does; 30 s leaves room for
# admin pages while still recycling a worker that is truly stuck.
timeout = 30
graceful_timeout = 15
keepalive = 5
# Recycle workers now and then so a slow leak can never take the service down.
max_requests = 20000
max_requests_jitter = 2000
# Only Traefik may tell us the original scheme (X-Forwarded-Proto); in docker compose it is the only
# peer that reaches the web container, so the compose file sets FORWARDED_ALLOW_IPS="*".
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = "-"
errorlog = "-"
# No query string (it can carry users' data) and no raw request line; the path is redacted with the rest
# of the line by the formatter below.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'
logger_class = "epnhook.gunicorn_logging.RedactingLogger"
# gunicorn's control socket defaults to one path per user ($HOME/.gunicorn/gunicorn.ctl): two servers
# on one machine would take each other's, and the image's user has no writable home. Nothing here
# uses gunicornc; docker and systemd manage the process.
control_socket_disable = True
# gunicorn's own lines (its errors and the access log) are written by the application's formatter, the
# one LOG_FORMAT names (settings.py reads it for the application), to the application's stream: one
# format and one time zone (UTC) in one stream, every line redacted and with its control characters
# escaped (a %0A in a path must not start a forged access line).
_formatter = "JsonFormatter" if os.environ.get("LOG_FORMAT") == "json" else "OneLineFormatter"
logconfig_dict = {
    "formatters": {"line": {"()": f"epnhook.logging.{_formatter}"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "line", "stream": "ext://sys.stdout"}},
    "root": {"handlers": ["console"], "level": "INFO"},
    "loggers": {
        "gunicorn.error": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "gunicorn.access": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
