"""The draw page in a real browser: headless Chromium (tests/chromium.py) loads it from the
package's server, draws a 7 with the mouse through the page's own pointer events, and reads what
the page shows: the digit, the 20 x 20 input, the ten bars and the 25 hidden units.

The tests skip, saying so, only where no Chromium is installed (Debian: ``apt-get install
chromium``); CI installs it (.ci/run)."""

from __future__ import annotations

import threading

import pytest
import torch
from chromium import Browser, find_chromium

from digits_torch import load_model
from digits_torch.cli.draw import serve
from digits_torch.inference.model_card import shipped_model
from digits_torch.store.checkpoints import save_safetensors

pytestmark = pytest.mark.skipif(
    find_chromium() is None, reason="no Chromium on PATH (Debian: apt-get install chromium)"
)
SEVEN = [(0.22, 0.2), (0.78, 0.2), (0.42, 0.86)]  # shares of the pad's width and height


@pytest.fixture(scope="module")
def server():
    running = serve(None)
    threading.Thread(target=running.serve_forever, daemon=True).start()
    yield running
    running.shutdown()
    running.server_close()


@pytest.fixture(scope="module")
def page(server):
    """The page, loaded (its model described) in a 1280 x 800 window."""
    with Browser(1280, 800) as browser:
        browser.open(server.url)
        browser.wait_for("document.body.dataset.ready === 'yes'")
        yield browser


def _draw(browser: Browser, points) -> None:
    """One stroke through ``points`` (shares of the pad's size); returns once it is read."""
    before = _answers(browser)
    x, y, width, height = browser.evaluate(
        "(() => { const b = document.getElementById('pad').getBoundingClientRect();"
        " return [b.x, b.y, b.width, b.height]; })()"
    )
    browser.drag([(x + u * width, y + v * height) for u, v in points])
    _wait_for_answer(browser, before)


def _answers(browser: Browser) -> int:
    """How many answers the page has shown."""
    return int(browser.evaluate("document.body.dataset.answers || '0'"))


def _wait_for_answer(browser: Browser, before: int) -> None:
    browser.wait_for(f"Number(document.body.dataset.answers || 0) > {before}")


def _clear(browser: Browser) -> None:
    """Each test starts from an empty pad, whatever ran before it on the page."""
    browser.click("#clear")
    browser.wait_for("document.getElementById('digit').textContent === '?'")


def test_a_drawn_seven_is_read_and_shown(page, server):
    _clear(page)
    _draw(page, SEVEN)
    assert page.evaluate("document.getElementById('digit').textContent") == "7"
    shown = page.evaluate(
        "(() => { const c = document.getElementById('input').getContext('2d');"
        " return Array.from(c.getImageData(0, 0, 20, 20).data); })()"
    )
    assert len(shown) == 4 * 400 and min(shown[0::4]) < 64  # ink on the 20 x 20 input
    assert sum(v < 128 for v in shown[0::4]) > 20
    widths = page.evaluate(
        "Array.from(document.querySelectorAll('#bars .fill')).map(f => parseFloat(f.style.width))"
    )
    assert len(widths) == 10 and max(widths) == widths[7] > 50
    top = page.evaluate("document.querySelector('#bars li.top span').textContent")
    assert top == "7"
    units = page.evaluate(
        "Array.from(document.querySelectorAll('#units .unit'))"
        ".map(u => [u.querySelectorAll('canvas').length, Number(u.dataset.activation)])"
    )
    assert len(units) == 25 and all(canvases == 1 for canvases, _ in units)
    assert min(a for _, a in units) >= 0 and max(a for _, a in units) > 0
    # the page asked only its own server for anything: it works offline
    assert all(url.startswith(server.url) for url in page.requested_urls())


def test_undo_and_clear(page):
    _clear(page)
    _draw(page, [(0.5, 0.15), (0.5, 0.85)])  # a 1
    assert page.evaluate("document.getElementById('digit').textContent") == "1"
    _draw(page, SEVEN)  # over it
    before = _answers(page)
    page.click("#undo")  # the 1 again
    _wait_for_answer(page, before)
    assert page.evaluate("document.getElementById('digit').textContent") == "1"
    page.click("#undo")  # nothing drawn
    page.wait_for("document.getElementById('digit').textContent === '?'")
    _draw(page, SEVEN)
    pad_ink = (
        "(() => { const c = document.getElementById('pad');"
        " return c.getContext('2d').getImageData(0, 0, c.width, c.height).data"
        ".reduce((a, b) => Math.min(a, b), 255); })()"
    )
    assert page.evaluate(pad_ink) < 128
    _clear(page)
    assert page.evaluate(pad_ink) == 255  # all white again


def test_a_random_mistake_is_shown_as_one(page):
    before = _answers(page)
    page.click("#mistake")
    _wait_for_answer(page, before)
    status = page.evaluate("document.getElementById('status').textContent")
    digit = page.evaluate("document.getElementById('digit').textContent")
    assert status.startswith("Shipped digit #") and f"read as {digit}." in status


def test_a_phone_sized_screen_shows_every_part(server):
    with Browser(390, 844) as phone:
        phone.open(server.url)
        phone.wait_for("document.body.dataset.ready === 'yes'")
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 390  # nothing wider than the screen: no sideways scrolling
        _draw(phone, SEVEN)
        assert phone.evaluate("document.getElementById('digit').textContent") == "7"
        assert phone.evaluate("document.querySelectorAll('#units canvas').length") == 25


def test_dead_units_are_marked(tmp_path):
    """The shipped model has none: two of its units killed (a bias no digit overcomes)."""
    model = load_model(shipped_model())
    with torch.no_grad():
        model.layers[0].bias[[2, 7]] = -100.0
    save_safetensors(model, tmp_path / "two_dead.safetensors")
    running = serve(str(tmp_path / "two_dead.safetensors"))
    threading.Thread(target=running.serve_forever, daemon=True).start()
    try:
        with Browser(1280, 800) as browser:
            browser.open(running.url)
            browser.wait_for("document.body.dataset.ready === 'yes'")
            dead = browser.evaluate(
                "Array.from(document.querySelectorAll('#units .unit.dead'))"
                ".map(u => u.dataset.unit)"
            )
            label = browser.evaluate(
                "getComputedStyle(document.querySelector('.unit.dead'), '::after').content"
            )
    finally:
        running.shutdown()
        running.server_close()
    assert dead == ["2", "7"] and label == '"dead"'
