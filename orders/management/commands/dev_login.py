"""Make sure a local admin exists and print where everything is (run by `make run`)."""

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from orders.setup_wizard import write_private

USERNAME = "admin"


class Command(BaseCommand):
    help = "Development only: create the local admin user if needed, print the webhook and admin URLs."

    def add_arguments(self, parser):
        parser.add_argument("--port", default="8000")

    def handle(self, *args, port, **options):
        if not settings.DEBUG:
            raise CommandError("dev_login is for development (DEBUG=True); use manage.py createsuperuser.")
        base = f"http://127.0.0.1:{port}"
        tokens = [token for partner, token in settings.WEBHOOK_TOKENS if partner == "epn_bz"]
        if not tokens:
            raise CommandError("No WEBHOOK_SECRET_TOKEN in .env; delete .env and run make run again.")
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
        self.stdout.write(
            f"\nWebhook URL (EPN.bz): {base}/webhook/{tokens[0]}\n"
            f"Try it:   curl '{base}/webhook/{tokens[0]}?click_id=123&order_number=ORDER-001"
            "&uniq_id=EPN-12345&order_status=waiting&revenue=1500&commission_fee=100'\n"
            f"Admin:    {base}/{settings.ADMIN_URL}\n"
            f"Login:    {USERNAME} / {password}\n"
            f"Health:   {base}/health\n"
        )
