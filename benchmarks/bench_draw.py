"""The draw page's prediction round trip: ``POST /predict`` of the page's PNG, to the JSON answer.

    python benchmarks/bench_draw.py [--requests 200] [--warmup 10] [--json OUT]

The server (``digits_torch.draw``, the shipped model) runs in this process on one torch thread,
as ``digits-draw`` does; the client sends, one after another over one keep-alive connection as
the page does, the PNG the page sends for a drawn 7 (140 x 140, black strokes on white), and
times each request from sending it to having parsed the answer: reading the image, making it into
the input (``digits_torch.images.images``), the forward pass and the JSON, both ways through
loopback HTTP. Median, 90th percentile and extremes, in milliseconds, over ``--requests`` timed
requests after ``--warmup`` untimed ones.
"""

from __future__ import annotations

import http.client
import io
import json
import platform
import statistics
import threading
import time
from datetime import date

import PIL.Image
import PIL.ImageDraw
import torch

from digits_torch.cli.draw import serve
from digits_torch.errors import ArgumentParser, exit_on_error


def page_png() -> bytes:
    """A 7 as the page sends one: its strokes, 7.5 % of the side wide, on a 140 x 140 PNG."""
    image = PIL.Image.new("RGB", (140, 140), "white")
    points = [(31, 28), (109, 28), (59, 120)]
    PIL.ImageDraw.Draw(image).line(points, fill="black", width=11, joint="curve")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def round_trips(url_host: str, port: int, body: bytes, count: int) -> list[float]:
    """Seconds of ``count`` POST /predict round trips over one connection."""
    connection = http.client.HTTPConnection(url_host, port, timeout=60)
    seconds = []
    for _ in range(count):
        start = time.perf_counter()
        connection.request("POST", "/predict", body=body, headers={"Content-Type": "image/png"})
        answer = json.loads(connection.getresponse().read())
        seconds.append(time.perf_counter() - start)
        assert answer["digit"] == 7, answer["digit"]
    connection.close()
    return seconds


@exit_on_error
def main(argv: list[str] | None = None) -> dict:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="timed requests (default 200)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed requests first")
    parser.add_argument("--json", metavar="OUT", help="also write the figures to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    server = serve(None)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        host, port = server.server_address[:2]
        body = page_png()
        round_trips(host, port, body, args.warmup)
        ms = sorted(1000 * s for s in round_trips(host, port, body, args.requests))
    finally:
        server.shutdown()
        server.server_close()
    result = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {platform.processor() or platform.platform()}",
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "requests": len(ms),
        "median_ms": statistics.median(ms),
        "p90_ms": ms[int(0.9 * (len(ms) - 1))],
        "min_ms": ms[0],
        "max_ms": ms[-1],
        "png_bytes": len(body),
    }
    print(
        f"POST /predict, {len(ms)} round trips of a {len(body):,}-byte PNG: median "
        f"{result['median_ms']:.1f} ms, 90th percentile {result['p90_ms']:.1f} ms, "
        f"min {result['min_ms']:.1f} ms, max {result['max_ms']:.1f} ms"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
