"""Local HTTP receivers that speak enough of Slack's webhook and PagerDuty's Events API for tests.

Each records the JSON bodies it accepted, with their paths and arrival times; `script` queues
replies (status, body, headers) that the next requests get instead of the normal one.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SLACK_OK = b"ok"  # what an incoming webhook answers
SLACK_API_OK = b'{"ok": true, "channel": "C000", "ts": "1.0"}'  # what chat.postMessage answers
PAGERDUTY_OK = b'{"status": "success", "message": "Event processed", "dedup_key": "x"}'


class Receiver:
    def __init__(self, reply: bytes | Callable[[str], bytes], status: int = 200, port: int = 0):
        self.bodies: list[dict] = []
        self.paths: list[str] = []
        self.arrivals: list[float] = []  # time.monotonic() of every request, accepted or not
        self.script: list[tuple[int, bytes, dict[str, str]]] = []
        self.requests = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests += 1
                receiver.arrivals.append(time.monotonic())
                if receiver.script:
                    code, body, headers = receiver.script.pop(0)
                else:
                    code, body, headers = status, reply(self.path) if callable(reply) else reply, {}
                    receiver.paths.append(self.path)
                    receiver.bodies.append(json.loads(raw or b"{}"))
                self.send_response(code)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def fail(
        self, status: int, times: int, *, retry_after: str | None = "0", body: bytes = b""
    ) -> None:
        """The next `times` requests get `status` (with `Retry-After` on a 429) and are not
        recorded."""
        headers = {"Retry-After": retry_after} if status == 429 and retry_after is not None else {}
        self.script += [(status, body, headers)] * times

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def slack_receiver(port: int = 0) -> Receiver:
    return Receiver(lambda path: SLACK_API_OK if path.startswith("/api/") else SLACK_OK, port=port)


def pagerduty_receiver(port: int = 0) -> Receiver:
    return Receiver(PAGERDUTY_OK, status=202, port=port)
