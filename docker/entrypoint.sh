#!/bin/sh
# The image's entry point.
#   serve (default)  apply the migrations, then run gunicorn with gunicorn.conf.py
#   cron             run manage.py check_health every minute, and manage.py reconcile every two hours
#                    (the compose file's cron service)
#   anything else    manage.py with those arguments, e.g. `setup` or `createsuperuser`
set -eu

case "${1:-serve}" in
  serve)
    # A migration on a big table may take longer than the per-query read timeout of the service.
    DATABASE_READ_TIMEOUT=0 python manage.py migrate --noinput
    exec gunicorn --config gunicorn.conf.py epnhook.wsgi
    ;;
  cron)
    next_reconcile=0
    while true; do
      python manage.py check_health || echo "check_health exited with status $?" >&2
      # Every two hours from the start, in the background: a run reads the networks' APIs for minutes at
      # times, and must not hold up the checks. reconcile refuses to start beside a run still going.
      if [ "$(date +%s)" -ge "$next_reconcile" ]; then
        next_reconcile=$(($(date +%s) + 7200))
        { python manage.py reconcile || echo "reconcile exited with status $?" >&2; } &
      fi
      # Start on the minute, like cron, however long the check took.
      sleep $((60 - $(date +%s) % 60))
    done
    ;;
  *)
    exec python manage.py "$@"
    ;;
esac
