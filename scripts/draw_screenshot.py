"""The screenshot of the draw page in docs/draw.md: a 7 drawn with the mouse in headless Chromium.

    python scripts/draw_screenshot.py                      # docs/draw.png, 1280 x 800
    python scripts/draw_screenshot.py --size 390x844 --out phone.png

Needs Chromium (Debian: ``apt-get install chromium``). The page is served by the package's own
server, with the shipped model unless a MODEL is given, and driven as
tests/draw/test_draw_browser.py drives it (tests/chromium.py).
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the Chromium driver the page tests use

from chromium import Browser  # noqa: E402

from digits_torch.cli.draw import serve  # noqa: E402

SEVEN = [(0.22, 0.2), (0.78, 0.2), (0.42, 0.86)]  # a 7, as shares of the pad's width and height


def draw_seven(browser: Browser) -> None:
    """Draw :data:`SEVEN` on the page's pad with the mouse and wait for the page's answer."""
    box = browser.evaluate(
        "(() => { const b = document.getElementById('pad').getBoundingClientRect();"
        " return [b.x, b.y, b.width, b.height]; })()"
    )
    x, y, width, height = box
    browser.drag([(x + u * width, y + v * height) for u, v in SEVEN])
    browser.wait_for("document.body.dataset.answers")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", help="the model (default: the shipped model)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "draw.png")
    parser.add_argument("--size", default="1280x800", help="the viewport, WIDTHxHEIGHT")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    server = serve(args.model)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with Browser(width, height) as browser:
            browser.open(server.url)
            browser.wait_for("document.body.dataset.ready")
            draw_seven(browser)
            browser.screenshot(args.out)
    finally:
        server.shutdown()
        server.server_close()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
