"""Make sure a local admin exists and print where everything is (run by `make run`)."""

import secrets
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from orders.setup_wizard import write_private
from partners.tokens import webhook_urls

USERNAME = "admin"


class Command(BaseCommand):
    help = ("Development only: create the local admin user if needed, print each network's webhook URL with a "
            "curl to try it, and the admin URL.")

    def add_arguments(self, parser):
        parser.add_argument("--port", default="8000")

    def handle(self, *args, port, **options):
        if not settings.DEBUG:
            raise CommandError("dev_login is for development (DEBUG=True); use manage.py createsuperuser.")
        base = f"http://127.0.0.1:{port}"
        networks = webhook_urls(base, settings.WEBHOOK_TOKENS)
        if not networks:
            raise CommandError("No webhook token in .env (WEBHOOK_SECRET_TOKEN); delete .env and run make run again.")
        password_file = settings.BASE_DIR / "var" / "dev-admin-password"
        user_model = get_user_model()
        user = user_model.objects.filter(username=USERNAME).first()
        if user is None:
            password = secrets.token_urlsafe(12)
            user_model.objects.create_superuser(USERNAME, "admin@localhost", password)
            password_file.parent.mkdir(parents=True, exist_ok=True)
            password_file.unlink(missing_ok=True)  # left from a database since deleted
            write_private(password_file, password.encode())
        password = password_file.read_text().strip() if password_file.exists() else ""
        if not password or not (user or user_model.objects.get(username=USERNAME)).check_password(password):
            password = "(changed since; reset it with: .venv/bin/python manage.py changepassword admin)"
        for partner, url in networks:
            # The URL to paste into the network's dashboard, and its example postback sent to our URL.
            self.stdout.write(
                f"\nWebhook URL ({partner.name}): {partner.postback_url(url)}\n"
                f"Try it:   curl '{url}?{urlencode(partner.example)}'"
            )
        self.stdout.write(
            f"\nAdmin:    {base}/{settings.ADMIN_URL}\n"
            f"Login:    {USERNAME} / {password}\n"
            f"Health:   {base}/health\n"
        )
