"""A real webhook receiver for the tests: verifies every delivery with the
official Standard Webhooks library (PyPI `standardwebhooks`) and answers as
the test tells it to.

    python3 webhook_receiver.py [PORT]      # prints the port it listens on

POST /configure {"secret": "whsec_...", "fail_first": N, "failure_status": 500,
                 "status": 200, "delay_ms": 0}
GET  /received  -> [{"id", "timestamp", "signature", "verified", "type", "status"}]
Any other POST is a delivery.
"""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

lock = threading.Lock()
config = {"secret": None, "fail_first": 0, "failure_status": 500, "status": 200, "delay_ms": 0}
received = []


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _reply(self, status, body=b"{}"):
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        with lock:
            body = json.dumps(received).encode()
        self._reply(200, body)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        if self.path == "/configure":
            with lock:
                config.update(json.loads(body))
            return self._reply(200)
        headers = {k.lower(): v for k, v in self.headers.items()}
        with lock:
            secret = config["secret"]
        verified = False
        if secret:
            try:
                Webhook(secret).verify(body, headers)
                verified = True
            except WebhookVerificationError:
                verified = False
        with lock:
            n = len(received)
            status = config["failure_status"] if n < config["fail_first"] else config["status"]
            delay = config["delay_ms"]
            try:
                event_type = json.loads(body).get("type")
            except ValueError:
                event_type = None
            received.append({
                "id": headers.get("webhook-id"),
                "timestamp": headers.get("webhook-timestamp"),
                "signature": headers.get("webhook-signature"),
                "verified": verified,
                "type": event_type,
                "status": status,
            })
        if delay:
            time.sleep(delay / 1000)
        self._reply(status)


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
