"""A small webhook receiver: checks MLflow's signature on each event and writes it down.

    WEBHOOK_SECRET=... python pipeline/receiver.py --port 8765 --events events.jsonl

MLflow signs each delivery with HMAC-SHA256 over "<delivery id>.<timestamp>.<body>" and the
webhook's secret (header X-MLflow-Signature: "v1,<base64>"). The receiver reads the secret
from the environment variable WEBHOOK_SECRET, never from its command line. It answers 401 to
a request whose signature is wrong or older than five minutes, records every request as one
JSON line (event, payload, whether the signature was valid, its reaction), and answers GET /
with 200 so that a starter can wait for it.

Delivery is at least once, at best: MLflow retries a failed delivery (three times, same
delivery id) and gives up after that. So the receiver acts once per X-MLflow-Delivery-Id
(a repeat is answered 200 and recorded as "duplicate"), and a team's automation does not
rely on seeing every event: it reconciles by reading the registry's aliases now and then.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MAX_AGE_SECONDS = 300  # older signed requests are refused (replay protection)


def signature_is_valid(secret: str, headers, body: bytes) -> bool:
    """True when the X-MLflow-Signature header matches the body, id and a recent timestamp."""
    delivery_id = headers.get("X-MLflow-Delivery-Id", "")
    timestamp = headers.get("X-MLflow-Timestamp", "")
    received = headers.get("X-MLflow-Signature", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > MAX_AGE_SECONDS:
        return False
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    return hmac.compare_digest(received, "v1," + base64.b64encode(digest).decode())


def reaction(event: dict) -> str:
    """What a team's automation would do next for this event."""
    kind = f"{event.get('entity')}.{event.get('action')}"
    data = event.get("data", {})
    if kind == "model_version.created":
        return f"evaluate version {data.get('version')} against @champion"
    if kind == "model_version_alias.created" and data.get("alias") == "champion":
        return f"deploy version {data.get('version')}"
    return "record only"


def make_handler(secret: str, events_file: Path):
    """A request handler class bound to a secret and an output file."""

    seen: set[str] = set()  # delivery ids already acted on (a real receiver keeps them)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # http.server calls do_<METHOD>
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"webhook receiver is up\n")

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            valid = signature_is_valid(secret, self.headers, body)
            try:
                event = json.loads(body)
            except ValueError:
                event = {}
            delivery_id = self.headers.get("X-MLflow-Delivery-Id", "")
            with lock:
                repeated = valid and delivery_id in seen
                if valid:
                    seen.add(delivery_id)
            if not valid:
                what = "refused"
            elif repeated:
                what = "duplicate"
            else:
                what = reaction(event)
            record = {
                "event": f"{event.get('entity')}.{event.get('action')}",
                "data": event.get("data", {}),
                "signature_valid": valid,
                "reaction": what,
            }
            with lock, open(events_file, "a") as out:
                out.write(json.dumps(record) + "\n")
            self.send_response(200 if valid else 401)
            self.end_headers()

        def log_message(self, *args):  # keep the console quiet
            pass

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--events", type=Path, required=True, help="JSON lines file to append to"
    )
    args = parser.parse_args()
    secret = os.environ.get("WEBHOOK_SECRET")
    if not secret:
        parser.error(
            "set the environment variable WEBHOOK_SECRET to the webhook's secret"
        )
    args.events.parent.mkdir(parents=True, exist_ok=True)
    server = ThreadingHTTPServer(
        ("127.0.0.1", args.port), make_handler(secret, args.events)
    )
    server.serve_forever()


if __name__ == "__main__":
    main()
