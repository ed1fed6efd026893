"""tests/live_service.py's sender: every request it makes comes back as a Reply, whatever the server does.

The outage tests count replies (statuses, the worst 503, "no dropped connection"); an answer that
raised instead would end a sender thread and silently drop its reply and everything it had left to send.
"""

import socket
import threading

import pytest

from tests.live_service import http_get


class CannedServer:
    """A loopback TCP server that reads each request's head, writes `answer` and closes the connection."""

    def __init__(self, answer: bytes):
        self.answer = answer
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}/health"
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self):
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            with connection:
                head = b""
                while b"\r\n\r\n" not in head and (chunk := connection.recv(4096)):
                    head += chunk
                connection.sendall(self.answer)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._socket.close()


@pytest.mark.parametrize(("answer", "error"), [
    (b"HELLO\r\n\r\n", "BadStatusLine"),
    (b"", "RemoteDisconnected"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"status\": ", "IncompleteRead"),
    (b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 100\r\n\r\n{\"status\": ", "IncompleteRead"),
], ids=["not-http", "closed-without-answer", "2xx-cut-short", "503-cut-short"])
def test_no_valid_answer_is_a_reply_with_status_0(answer, error):
    with CannedServer(answer) as server:
        reply = http_get(server.url, timeout=5)
    assert reply.status == 0 and error in reply.error


def test_an_error_status_is_a_reply_with_its_body_and_headers():
    answer = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 30\r\nContent-Length: 2\r\n\r\n{}"
    with CannedServer(answer) as server:
        reply = http_get(server.url, timeout=5)
    assert (reply.status, reply.body, reply.headers["Retry-After"], reply.error) == (503, b"{}", "30", "")


def test_nobody_listening_is_a_reply_with_status_0():
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    reply = http_get(f"http://127.0.0.1:{port}/health", timeout=5)
    assert reply.status == 0 and "Connection refused" in reply.error
