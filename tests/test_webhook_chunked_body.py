"""A chunked POST (no Content-Length) through a real gunicorn: its body is stored, and bounded.

Django's test client always sends a Content-Length, so this case only shows with a real server:
before the fix, Django read such a body as empty and the postback was stored without it.
"""

import http.client
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.factories import postback
from tests.mariadb_server import free_port
from tests.settings import TEST_TOKEN

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """gunicorn with the production config, on a free port, over its own SQLite file."""
    var = tmp_path_factory.mktemp("gunicorn")
    database = var / "db.sqlite3"
    env = {
        "PATH": os.environ.get("PATH", ""), "ENV_FILE": "", "DEBUG": "False", "SECRET_KEY": "x" * 50,
        "ALLOWED_HOSTS": "127.0.0.1", "SECURE_SSL_REDIRECT": "False", "WEBHOOK_SECRET_TOKEN": TEST_TOKEN,
        "DATABASE_URL": f"sqlite:///{database}", "SPOOL_DIR": str(var / "spool"), "ALERT_STATE_DIR": str(var / "a"),
        "EMAIL_URL": "consolemail://", "LOG_LEVEL": "WARNING",
    }
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True,
                   timeout=180)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}", "--workers", "1",
         "epnhook.wsgi:application"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, "gunicorn exited at start"
                assert time.monotonic() < deadline, "gunicorn did not start listening"
                time.sleep(0.2)
        yield port, database
    finally:
        process.terminate()
        process.wait(timeout=30)


def post_chunked(port: int, chunks: list[bytes], content_type: str) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    # An iterable body without Content-Length is sent with Transfer-Encoding: chunked.
    connection.request("POST", f"/webhook/{TEST_TOKEN}", body=iter(chunks),
                       headers={"Content-Type": content_type}, encode_chunked=True)
    response = connection.getresponse()
    answer = response.status, json.loads(response.read())
    connection.close()
    return answer


def test_chunked_json_body_is_read_and_stored_whole(server):
    port, database = server
    body = json.dumps(postback(uniq_id="chunked")).encode()
    status, answer = post_chunked(port, [body[:10], body[10:25], body[25:]], "application/json")
    assert (status, answer["status"]) == (200, "created")
    with sqlite3.connect(database) as db:
        stored = db.execute("SELECT body FROM orders_delivery WHERE id = ?", (answer["delivery_id"],)).fetchone()[0]
    assert stored == body


def test_chunked_body_over_the_limit_is_413(server):
    port, database = server
    status, answer = post_chunked(port, [b"x=" + b"a" * 40_000] * 2, "application/x-www-form-urlencoded")
    assert status == 413 and answer["field"] == "body"
