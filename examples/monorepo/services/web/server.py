"""The example web front: renders a page with data it fetches from the api through $API_URL."""

import json
import os
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API_URL = os.environ["API_URL"]


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        with urllib.request.urlopen(f"{API_URL}/items", timeout=5) as response:
            data = json.load(response)
        items = "".join(f"<li>{item}</li>" for item in data["items"])
        body = f"<h1>{data['greeting']}</h1><ul>{items}</ul>\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        print(f"{self.command} {self.path} -> {args[1] if len(args) > 1 else ''}")


server = ThreadingHTTPServer((os.environ["HOST"], int(os.environ["PORT"])), Handler)
where = f"http://{os.environ['HOST']}:{os.environ['PORT']}"
print(f"web listening on {where}, using the api at {API_URL}")
server.serve_forever()
