"""The page's HTTP server: the standard library's threading server, its own assets, a JSON API.

Routes (docs/draw.md): ``GET /`` the page, ``GET /draw.js`` and ``GET /draw.css`` its script and
style, ``GET /model`` the model's description, ``POST /predict`` an image's reading, ``GET
/random-digit`` and ``GET /random-mistake`` a shipped digit's. Anything else is a 4xx with a JSON
``{"error": "..."}`` body, and the server goes on serving.

Assets are read from the package once, at start, into a table keyed by URL path: a request's
path is only ever looked up in that table, never joined to a directory, so no URL reaches a file
outside it. Every response forbids the page from loading anything from elsewhere
(Content-Security-Policy ``default-src 'self'``): the page works with no network.

Why the standard library: one page and a JSON API on loopback need routing by a few fixed paths,
a body size check and threads, which ``http.server`` has. A framework would add dependencies and
their updates to every install for none of it.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import socket
import sys
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import urlsplit

from ..errors import UserError
from .reader import Reader

__all__ = ["MAX_BODY", "DrawServer", "assets"]

MAX_BODY = 10 * 2**20  # bytes: larger uploads are refused unread (10 MB)
# URL path -> (file in digits_torch/draw/static, content type)
ASSET_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/draw.js": ("draw.js", "text/javascript; charset=utf-8"),
    "/draw.css": ("draw.css", "text/css; charset=utf-8"),
    "/favicon.ico": ("favicon.svg", "image/svg+xml"),
}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
API_GETS = {  # URL path -> what GET answers there, from the server's Reader
    "/model": lambda reader: reader.description(),
    "/random-digit": lambda reader: reader.sample(mistake=False),
    "/random-mistake": lambda reader: reader.sample(mistake=True),
}


def assets() -> dict[str, tuple[bytes, str]]:
    """URL path -> (bytes, content type) of every asset the page needs, read from the package."""
    static = resources.files("digits_torch.draw") / "static"
    files = ASSET_FILES.items()
    return {path: ((static / name).read_bytes(), kind) for path, (name, kind) in files}


class DrawServer(ThreadingHTTPServer):
    """Serves the page and its API for ``reader``, one thread per connection."""

    daemon_threads = True  # Ctrl-C does not wait for a browser's idle keep-alive connections
    request_queue_size = 128  # connections waiting to be accepted (socketserver's 5 resets a class)

    def __init__(self, address: tuple[str, int], reader: Reader) -> None:
        self.reader = reader
        self.assets = assets()
        if ":" in address[0]:  # an IPv6 address (::1, ::)
            self.address_family = socket.AF_INET6
        super().__init__(address, Handler)

    def handle_error(self, request, client_address) -> None:
        """A client gone mid-answer (a closed tab, a reset) is no error of ours; others are
        printed, as socketserver does, and the server goes on."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/"


class BadRequest(Exception):
    """A request refused: its status and the one line the JSON error says."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class Handler(BaseHTTPRequestHandler):
    server: DrawServer
    server_version = "digits-draw"
    protocol_version = "HTTP/1.1"  # keep-alive: the page's requests reuse one connection
    # Headers and body go out in two writes: with Nagle's algorithm the body would wait for the
    # client's delayed ACK of the headers, 40 ms on Linux, on every answer.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._respond(self._get)

    def do_POST(self) -> None:
        self._respond(self._post)

    def _get(self) -> None:
        path = urlsplit(self.path).path
        if path in API_GETS:
            self._send_json(HTTPStatus.OK, API_GETS[path](self.server.reader))
        elif path in self.server.assets:
            body, kind = self.server.assets[path]
            self._send(HTTPStatus.OK, body, kind)
        elif path == "/predict":
            raise BadRequest(HTTPStatus.METHOD_NOT_ALLOWED, "POST an image to /predict")
        else:
            raise BadRequest(HTTPStatus.NOT_FOUND, f"no such page: {path[:200]}")

    def _post(self) -> None:
        path = urlsplit(self.path).path
        if path != "/predict":
            known = path in self.server.assets or path in API_GETS
            status = HTTPStatus.METHOD_NOT_ALLOWED if known else HTTPStatus.NOT_FOUND
            raise BadRequest(status, f"POST goes to /predict, not {path[:200]}")
        body = self._body()
        try:
            answer = self.server.reader.predict_bytes(_image_of(body, self.headers))
        except UserError as err:
            raise BadRequest(HTTPStatus.BAD_REQUEST, err.problem) from None
        self._send_json(HTTPStatus.OK, answer)

    def _body(self) -> bytes:
        """The request's body, refused unread when it is too large or its size is not given."""
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding") or length is None:
            raise BadRequest(HTTPStatus.LENGTH_REQUIRED, "give the body's Content-Length")
        if not length.isdigit():
            raise BadRequest(HTTPStatus.BAD_REQUEST, f"Content-Length {length[:40]!r} is no size")
        if int(length) > MAX_BODY:
            problem = f"{int(length):,} bytes is over the limit of {MAX_BODY // 2**20} MB"
            raise BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, problem)
        return self.rfile.read(int(length))

    def _respond(self, handle) -> None:
        """Run ``handle``; a refusal or a failure is a JSON error, and the server goes on."""
        try:
            handle()
        except BadRequest as err:
            self.close_connection = True  # a body left unread must not be read as a request
            self._send_json(err.status, {"error": str(err)})
        except UserError as err:  # no mistake to show, ...
            self._send_json(HTTPStatus.NOT_FOUND, {"error": err.problem})
        except Exception:  # a bug: said on the server's stderr, and the page gets a line
            traceback.print_exc(file=sys.stderr)
            self.close_connection = True
            self._send_json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"})

    def send_error(self, code: int, message: str | None = None, explain: str | None = None):
        """http.server's own refusals (a malformed request, an unknown method) as JSON too; an
        unsupported method is 405, the client's mistake, rather than 501."""
        if code == HTTPStatus.NOT_IMPLEMENTED:
            code, message = HTTPStatus.METHOD_NOT_ALLOWED, f"method {self.command!r} not allowed"
        self.close_connection = True
        self._send_json(HTTPStatus(code), {"error": message or HTTPStatus(code).phrase})

    def _send_json(self, status: HTTPStatus, value: dict) -> None:
        body = json.dumps(value, separators=(",", ":")).encode()
        self._send(status, body, "application/json")

    def _send(self, status: HTTPStatus, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        if status == HTTPStatus.METHOD_NOT_ALLOWED:
            self.send_header("Allow", "POST" if self.path.startswith("/predict") else "GET")
        if self.close_connection:
            self.send_header("Connection", "close")
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        """Quiet: the terminal shows the address and errors, not every request."""


def _image_of(body: bytes, headers) -> bytes:
    """The image's bytes: the body, or the first file of a multipart/form-data body."""
    kind = headers.get_content_type()
    if kind != "multipart/form-data":
        return body
    head = f"Content-Type: {headers['Content-Type']}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    parts = [p for p in message.iter_parts() if p.get_content_disposition() == "form-data"]
    files = [p for p in parts if p.get_filename() is not None] or parts
    if not files:
        raise BadRequest(HTTPStatus.BAD_REQUEST, "a multipart body with no file in it")
    return files[0].get_payload(decode=True) or b""
