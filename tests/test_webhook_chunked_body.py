"""A chunked POST (no Content-Length) through a real gunicorn: its body is stored, and bounded.

Django's test client always sends a Content-Length, so this case only shows with a real server:
before the fix, Django read such a body as empty and the postback was stored without it.
"""

import http.client
import json
import sqlite3

import pytest

from tests.factories import postback
from tests.live_service import TOKEN, Service, migrate, production_env


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """gunicorn with the production config, on a free port, over its own SQLite file."""
    var = tmp_path_factory.mktemp("gunicorn")
    database = var / "db.sqlite3"
    env = production_env(f"sqlite:///{database}", var, "consolemail://")
    migrate(env)
    with Service(env, var, workers=1) as service:
        yield service.port, database


def post_chunked(port: int, chunks: list[bytes], content_type: str) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    # An iterable body without Content-Length is sent with Transfer-Encoding: chunked.
    connection.request("POST", f"/webhook/{TOKEN}", body=iter(chunks),
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
