"""The example api: JSON on GET /items, served on $HOST:$PORT."""

import json
import os
import pathlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DATA = pathlib.Path(__file__).resolve().parents[3] / "var" / "example-data.json"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        items = json.loads(DATA.read_text())["items"] if DATA.exists() else []
        body = json.dumps({"greeting": os.environ.get("GREETING", ""), "items": items}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        print(f"{self.command} {self.path} -> {args[1] if len(args) > 1 else ''}")


server = ThreadingHTTPServer((os.environ["HOST"], int(os.environ["PORT"])), Handler)
print(f"api listening on http://{os.environ['HOST']}:{os.environ['PORT']}")
server.serve_forever()
