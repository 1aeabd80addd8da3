"""The example shop: one small server, run twice from the Procfile (storefront and admin)."""

import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROLE = sys.argv[1]


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"shop {ROLE}; the api is at {os.environ['API_URL']}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        print(f"{self.command} {self.path}")


server = ThreadingHTTPServer((os.environ["HOST"], int(os.environ["PORT"])), Handler)
print(f"shop {ROLE} listening on http://{os.environ['HOST']}:{os.environ['PORT']}")
server.serve_forever()
