"""WSGI entry point for gunicorn."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "epnhook.settings")

application = get_wsgi_application()

# Each worker knows the admin's networks and tokens before its first request (partners.snapshot).
from partners import snapshot  # noqa: E402 (the apps are loaded above)

snapshot.start()
