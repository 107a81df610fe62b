"""``python -m digits_torch draw [MODEL] [--port N] [--host H] [--no-browser]``: the page.

Serves the draw-a-digit page (:mod:`digits_torch.draw`) until Ctrl-C (or SIGTERM), on 127.0.0.1
at a free port unless told otherwise; prints its address and opens it in the browser.
"""

from __future__ import annotations

import argparse
import errno
import signal
import threading
import webbrowser

import torch

from ..draw.reader import Reader
from ..draw.server import DrawServer
from ..errors import ArgumentParser, UserError, exit_on_error, print_stdout
from ..inference.loading import MODEL_FILES

__all__ = ["main", "serve"]


def serve(model: str | None, host: str = "127.0.0.1", port: int = 0) -> DrawServer:
    """A server for ``model`` (None: the shipped model), bound and ready, not yet serving.

    Raises:
        UserError: the model cannot be read, or the address cannot be bound (a port in use).
    """
    reader = Reader(model)
    try:
        return DrawServer((host, port), reader)
    except OSError as err:
        where = f"{host} port {port}"
        if err.errno == errno.EADDRINUSE:
            raise UserError(
                f"{where} is in use; give another --port, or none for a free one"
            ) from None
        raise UserError(f"cannot serve on {where} ({err.strerror or err})") from None


@exit_on_error
def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    torch.set_num_threads(1)  # one digit at a time: more threads only wait on each other
    server = serve(args.model, args.host, args.port)
    print_stdout(f"digits-draw: {server.reader.name} at {server.url}  (Ctrl-C stops)")
    if not args.no_browser:
        threading.Thread(target=webbrowser.open, args=(server.url,), daemon=True).start()
    # Ctrl-C and SIGTERM stop it, also where the process started with Ctrl-C ignored (a
    # background job of a shell without job control), which Python then leaves ignored
    stops = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.signal(signum, signal.default_int_handler) for signum in stops}
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print_stdout("stopped")
    finally:
        server.server_close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="python -m digits_torch draw",
        description="Serve a page to draw a digit on and watch the network read it: the 20 x 20 "
        "input it becomes, its 25 hidden units, its ten probabilities.",
    )
    parser.add_argument(
        "model", metavar="MODEL", nargs="?", help=f"{MODEL_FILES} (default: the shipped model)"
    )
    parser.add_argument("--port", type=_port, default=0, help="port (default: a free one)")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0 lets "
        "others on the network in)",
    )
    parser.add_argument(
        "--no-browser", action="store_true", help="print the address; do not open a browser"
    )
    return parser


def _port(text: str) -> int:
    """--port's value: 0 to 65535 (0: a free one)."""
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"a port is a number from 0 to 65535, not {text!r}")
    return int(text)
