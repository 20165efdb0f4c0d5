"""A webhook receiver as a process of its own (on its own host): records every POST, answers 200, tells what it got.

``python receiver.py HOST PORT SECRET``. ``GET /deliveries`` lists what arrived, in order: the event id and type, the
job id and status from the body, whether the signature verified, and a digest of the raw body. A job whose
``metadata.hold_s`` is set gets its first delivery's answer held back that long (a consumer can be killed while
it waits). Standard library and ``ttsq.webhooks.verify`` only.
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ttsq.webhooks import verify

deliveries: list[dict[str, Any]] = []
lock = threading.Lock()


def main(host: str, port: int, secret: bytes) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            event = json.loads(body)
            entry = {
                "at": time.time(),
                "path": self.path,
                "event_id": self.headers.get("Ttsq-Event-Id"),
                "event_type": self.headers.get("Ttsq-Event"),
                "job_id": event.get("job_id"),
                "status": event.get("status"),
                "valid": verify(secret, self.headers.get("Ttsq-Signature", ""), body),
                "sha256": hashlib.sha256(body).hexdigest(),
                "answered": False,
            }
            with lock:
                first = not any(d["event_id"] == entry["event_id"] for d in deliveries)
                deliveries.append(entry)
            hold_s = float((event.get("metadata") or {}).get("hold_s", 0))
            if first and hold_s:
                time.sleep(hold_s)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            entry["answered"] = True

        def do_GET(self) -> None:
            with lock:
                payload = json.dumps(deliveries).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def handle_one_request(self) -> None:
            try:
                super().handle_one_request()
            except (ConnectionError, TimeoutError):  # the consumer went away mid-request (killed)
                self.close_connection = True

    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer((host, port), Handler)
    print(f"receiver on http://{host}:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3].encode())
