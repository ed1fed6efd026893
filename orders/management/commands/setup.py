"""`manage.py setup`: the production install wizard (see orders/setup_wizard.py for the steps)."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from orders import setup_wizard as wizard

# Flags for everything that is not a secret. Secrets come from the terminal (no echo) or, for
# automation, from the environment the service reads anyway: DATABASE_URL, EMAIL_URL, ANYMAIL_API_KEY, and
# the networks' API credentials (EPN_API_CLIENT_ID and _SECRET, ADMITAD_CLIENT_ID and _SECRET).
FLAGS = {
    "domain": "public domain, e.g. webhook.example.com",
    "db_host": "MariaDB host",
    "db_port": "MariaDB port",
    "db_name": "MariaDB database",
    "db_user": "MariaDB user",
    "admins": "alert addresses, comma-separated",
    "mail": "smtp, anymail or console",
    "smtp_host": "SMTP host",
    "smtp_port": "SMTP port",
    "smtp_security": "tls (STARTTLS), ssl or none",
    "smtp_user": "SMTP user",
    "anymail_provider": "django-anymail provider, e.g. mailgun",
    "from_email": "sender address of alerts",
    "outbound_url": "the cashback site's endpoint for outbound events, https://... (a signing secret is made)",
}


class Command(BaseCommand):
    help = ("Set up a production install: ask, check MariaDB, write .env (mode 600), collect the static files, "
            "migrate, print each network's webhook URL and the next step.")
    # The configuration may not exist yet: nothing is checked before the wizard has written it.
    requires_system_checks = []
    requires_migrations_checks = False

    def add_arguments(self, parser):
        parser.add_argument("--no-input", "--noinput", dest="interactive", action="store_false",
                            help="Ask nothing: take flags, then the environment and the current .env.")
        parser.add_argument("--force", action="store_true", help="Replace an existing .env (a backup is kept).")
        parser.add_argument("--docker", action="store_true",
                            help="For docker compose: the MariaDB container is the database (host db, generated "
                                 "password); migrations run when the web container starts.")
        parser.add_argument("--create-database", action="store_true",
                            help="With --no-input: create the database if it is missing.")
        parser.add_argument("--test-email", action="store_true", help="With --no-input: send a test email.")
        parser.add_argument("--skip-migrate", action="store_true", help="Do not run the migrations.")
        for name, text in FLAGS.items():
            parser.add_argument(f"--{name.replace('_', '-')}", dest=name,
                                type=int if name.endswith("_port") else str, help=text)

    def handle(self, *args, interactive, force, docker, create_database, test_email, skip_migrate, **options):
        if not settings.ENV_FILE:
            raise CommandError("ENV_FILE is empty: set it to the file the wizard should write.")
        env_file = Path(settings.ENV_FILE).resolve()
        if env_file.exists() and not force:
            raise CommandError(f"{env_file} exists; refusing to overwrite it. Run again with --force to replace "
                               "it (the current file is kept as a backup, and its values are offered as defaults).")
        answers = wizard.Answers.from_settings(settings)
        for name in FLAGS:
            if options[name] is not None:
                value = options[name]
                setattr(answers, name, [item.strip() for item in value.split(",")] if name == "admins" else value)
        prompter = wizard.Prompter(self.stdout.write)
        try:
            if docker:
                wizard.use_docker_database(answers)
            if interactive:
                self.stdout.write(f"Setting up epnhook; the answers go to {env_file}. Enter keeps the [default].")
                wizard.ask(answers, prompter, docker=docker)
            answers.validate()
            if not docker:
                self.check_database(answers, prompter, interactive, create_database)
            answers.generate_missing_secrets()
            kept = wizard.unmanaged_lines(env_file.read_text()) if env_file.exists() else []
            backup = wizard.write_env(env_file, wizard.render_env(answers, docker=docker, kept_lines=kept),
                                      force=force)
        except wizard.SetupError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(self.style.SUCCESS(f"\nWrote {env_file} (mode 600)."))
        if backup:
            self.stdout.write(f"The previous file is kept as {backup}.")
        if kept:
            self.stdout.write(f"Carried over from it: {', '.join(line.split('=', 1)[0] for line in kept)}.")

        if interactive and prompter.confirm("Send a test email to the alert addresses now?") or test_email:
            self.manage(env_file, "sendtestemail", "--admins", failure="The test email was not sent; check the "
                        "mail settings in .env and run: manage.py sendtestemail --admins")
        if not docker:
            # Ready to serve, as the docker image is: the hashed static files the admin's pages link to
            # (without them every admin page answers 500), and var/, where the service keeps its spool
            # and alert state (the systemd units let it write there and nowhere else in the checkout).
            self.stdout.flush()
            if wizard.run_manage(settings.BASE_DIR, env_file, "collectstatic", "--noinput", "--verbosity", "0"
                                 ).returncode:
                raise CommandError(f"collectstatic failed; {env_file} is written. Fix the cause, then run: "
                                   "manage.py collectstatic --noinput")
            (Path(settings.BASE_DIR) / "var").mkdir(exist_ok=True)
        if not docker and not skip_migrate:
            self.stdout.flush()
            if wizard.run_manage(settings.BASE_DIR, env_file, "migrate", "--noinput").returncode:
                # Without its tables the service cannot store a postback: stop here, loudly.
                raise CommandError(f"Migrations failed; {env_file} is written. Fix the cause, then run: "
                                   "manage.py migrate")
            if interactive and prompter.confirm("Create an admin (superuser) account now?"):
                self.manage(env_file, "createsuperuser", failure="No admin was created; later: "
                            "manage.py createsuperuser")
        result = wizard.run_manage(settings.BASE_DIR, env_file, "check", "--deploy", "--fail-level", "WARNING",
                                   capture=True)
        if result.returncode:
            self.stderr.write(f"manage.py check --deploy reports problems:\n{result.stdout}{result.stderr}")
        urls = "".join(f"\n{name}:\n    {url}\n" for name, url in answers.postback_urls())
        self.stdout.write(self.style.SUCCESS("\nDone.") + (
            f"\nWebhook URLs, to paste into each network's dashboard:\n{urls}"
            f"\nAdmin: https://{answers.domain}/{settings.ADMIN_URL}\n"
        ))
        if answers.outbound_url:
            self.stdout.write(f"Outbound events go to {answers.outbound_url}, signed with this secret; give it to "
                              f"the site (README: \"Outbound events\"):\n    {answers.outbound_secret}\n")
        self.stdout.write(wizard.next_steps(Path(settings.BASE_DIR), answers.domain, docker=docker))

    def check_database(self, answers, prompter, interactive, create_database):
        """Until the database is usable: interactively, offer to correct the answers; otherwise fail."""
        def may_create():
            if interactive:
                return prompter.confirm(f"Database {answers.db_name} does not exist. Create it (utf8mb4)?")
            return create_database

        while True:
            try:
                self.stdout.write(wizard.check_database(answers, may_create=may_create))
                return
            except wizard.SetupError as error:
                if not interactive:
                    raise
                self.stderr.write(str(error))
                if not prompter.confirm("Change the database answers and try again?"):
                    raise
                wizard.ask_database(answers, prompter)

    def manage(self, env_file, *args, failure):
        self.stdout.flush()  # what was said so far comes before the child's output
        if wizard.run_manage(settings.BASE_DIR, env_file, *args).returncode:
            self.stderr.write(failure)
