"""A site's webhook endpoint on loopback: verifies every request with `standardwebhooks`, as the README tells a
site to, and can be told to fail (500, 429/503 with Retry-After, hang past the sender's timeout, be down)."""

import base64
import http.server
import threading
import time
from dataclasses import dataclass

from standardwebhooks.webhooks import Webhook

from devtools.mariadb import free_port

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


@dataclass(frozen=True)
class Received:
    webhook_id: str
    payload: dict

    @property
    def key(self) -> tuple[str, str]:
        return self.payload["data"]["partner"], self.payload["data"]["uniq_id"]


class Receiver:
    """`mode` is what the next requests get: "ok", "500", "429", "503", "hang". `delivered` holds, in order,
    every request answered 2xx; `requests` counts all; `invalid` counts those that failed verification.
    `hold_at`: the request that brings `delivered` to this length is recorded, then answered only after
    `hang_seconds` (a sender killed meanwhile never hears that it was delivered). `delay`: seconds each
    accepted request takes, as a site that does some work."""

    def __init__(self, secret: str = SECRET, port: int | None = None):
        self.webhook = Webhook(secret)
        self.port = port or free_port()
        self.mode = "ok"
        self.retry_after = "1"
        self.hang_seconds = 3.0
        self.hold_at: int | None = None
        self.delay = 0.0
        self.delivered: list[Received] = []
        self.requests = 0
        self.invalid = 0
        self._server = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> "Receiver":
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 (http.server's hook name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.answer(self, body)

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Down: the port refuses connections until start() again."""
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def answer(self, handler, body: bytes) -> None:
        with self._lock:
            self.requests += 1
            mode = self.mode
            try:
                payload = self.webhook.verify(body, dict(handler.headers))
            except Exception:
                self.invalid += 1
                return self._reply(handler, 400)
            if mode == "ok":
                self.delivered.append(Received(handler.headers["webhook-id"], payload))
                held = len(self.delivered) == self.hold_at
        if mode == "hang":
            time.sleep(self.hang_seconds)
            return self._reply(handler, 200)  # too late: the sender gave up waiting
        if mode == "ok":
            time.sleep(self.hang_seconds if held else self.delay)
            return self._reply(handler, 204)
        self._reply(handler, int(mode), {"Retry-After": self.retry_after} if mode in ("429", "503") else {})

    @staticmethod
    def _reply(handler, status: int, headers: dict | None = None) -> None:
        try:
            handler.send_response(status)
            for name, value in (headers or {}).items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
        except OSError:
            pass  # the sender is gone (killed, or it stopped waiting)

    def statuses(self) -> dict[tuple[str, str], list[str]]:
        """Each order's statuses in the order received, repeats (same webhook-id) dropped as a site would."""
        seen, orders = set(), {}
        for item in self.delivered:
            if item.webhook_id in seen:
                continue
            seen.add(item.webhook_id)
            if item.payload["type"] == "order.status_changed":
                orders.setdefault(item.key, []).append(item.payload["data"]["status"])
        return orders

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


