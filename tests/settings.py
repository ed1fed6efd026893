"""Test settings: fixed test values in the environment, then the one real settings module.

The `.env` file of a developer's checkout is ignored so that tests never depend on it; only
DATABASE_URL passes through, which is how the same suite runs on SQLite and on MariaDB.
"""

import os
import tempfile

TEST_TOKEN = "test-token-epn-0123456789abcdefghijklmnopqrstuvwxyz"
TEST_TOKEN_ROTATED = "test-token-epn-rotated-9876543210zyxwvutsrqponmlkjihg"

_var = tempfile.mkdtemp(prefix="epnhook-test-")
os.environ.update({
    "ENV_FILE": "",
    "DEBUG": "False",
    "SECRET_KEY": "test-secret-key-not-for-production",
    "ALLOWED_HOSTS": "testserver,127.0.0.1,localhost",
    "SECURE_SSL_REDIRECT": "False",
    "WEBHOOK_SECRET_TOKEN": f"{TEST_TOKEN},{TEST_TOKEN_ROTATED}",
    "ADMINS": "Ops <ops@example.com>",
    "EMAIL_URL": "consolemail://",
    "SPOOL_DIR": os.path.join(_var, "spool"),
    "ALERT_STATE_DIR": os.path.join(_var, "alerts"),
    "LANGUAGE_CODE": "en",
})

from epnhook.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests


# Admin pages link static files; the manifest storage would need collectstatic before every run.
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
