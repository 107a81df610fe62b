"""Headless Chromium driven through the Chrome DevTools Protocol over a pipe, for the page tests
(tests/draw/test_draw_browser.py) and the docs' screenshot (scripts/draw_screenshot.py).

``--remote-debugging-pipe`` makes Chromium read protocol commands from its file descriptor 3 and
write replies and events to 4, each a JSON message ended by a NUL byte: no websocket, no port, no
package beyond the standard library. Input goes through ``Input.dispatchMouseEvent``, so the page
sees real pointer events, as from a mouse.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["Browser", "find_chromium"]

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """The Chromium executable on PATH (Debian's ``chromium`` first), or None."""
    return next((path for name in NAMES if (path := shutil.which(name))), None)


class Browser:
    """One headless Chromium with one page (tab). Use as a context manager.

    Args:
        width, height: the page's viewport, CSS pixels. scale: device pixels per CSS pixel.
    """

    def __init__(self, width: int = 1280, height: int = 800, scale: float = 1.0) -> None:
        executable = find_chromium()
        if executable is None:
            raise FileNotFoundError("no Chromium on PATH")
        self._profile = tempfile.TemporaryDirectory(prefix="chromium-")
        to_browser, self._commands = os.pipe()  # Chromium reads fd 3
        self._replies, from_browser = os.pipe()  # and writes fd 4

        def pipes_as_3_and_4() -> None:
            os.dup2(to_browser, 3)
            os.dup2(from_browser, 4)

        flags = [
            "--headless", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions",
            "--disable-background-networking", "--disable-sync", "--mute-audio",
            f"--user-data-dir={self._profile.name}", "about:blank",
        ]  # fmt: skip
        self._process = subprocess.Popen(
            [executable, *flags],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=False,  # fds 3 and 4 must reach Chromium
            preexec_fn=pipes_as_3_and_4,
            start_new_session=True,  # its own process group: close() ends its helpers too
        )
        os.close(to_browser)
        os.close(from_browser)
        self._next_id, self._buffer, self.events = 0, b"", []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Network"):
            self.call(f"{domain}.enable", session=True)
        self.call(
            "Emulation.setDeviceMetricsOverride",
            session=True,
            width=width,
            height=height,
            deviceScaleFactor=scale,
            mobile=width < 600,
        )

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """End the browser and every process it started (renderers, utilities: killing the main
        process alone leaves them writing into the profile while it is removed), then remove
        the profile."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGKILL)
        self._process.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # until the last of the group is gone
            try:
                os.killpg(self._process.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.02)
        for fd in (self._commands, self._replies):
            os.close(fd)
        self._profile.cleanup()

    def call(self, method: str, session: bool = False, timeout: float = 30, **params) -> dict:
        """Send one command (to the page if ``session``, else to the browser); its result."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self._session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("Chromium did not answer")
            chunk = os.read(self._replies, 1 << 16)
            if not chunk:
                raise ConnectionError("Chromium closed its pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def open(self, url: str) -> None:
        self.call("Page.navigate", session=True, url=url)

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (awaited if a promise)."""
        result = self.call(
            "Runtime.evaluate",
            session=True,
            expression=expression,
            returnByValue=True,
            awaitPromise=True,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30):
        """Poll until the expression is truthy (one that throws counts as false: the page may
        still be loading); its value."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if value := self.evaluate(expression):
                    return value
            except RuntimeError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"never true in the page: {expression}")
            time.sleep(0.05)

    def mouse(self, kind: str, x: float, y: float, pressed: bool) -> None:
        """One mouse event at CSS pixel (x, y): mousePressed, mouseMoved or mouseReleased."""
        self.call(
            "Input.dispatchMouseEvent",
            session=True,
            type=kind,
            x=x,
            y=y,
            button="left" if kind != "mouseMoved" or pressed else "none",
            buttons=1 if pressed else 0,
            clickCount=1 if kind != "mouseMoved" else 0,
        )

    def drag(self, points: list[tuple[float, float]], steps: int = 8) -> None:
        """Press at the first point, move through the others (``steps`` moves per segment),
        release at the last: one stroke."""
        self.mouse("mousePressed", *points[0], pressed=True)
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            for k in range(1, steps + 1):
                t = k / steps
                self.mouse("mouseMoved", x0 + t * (x1 - x0), y0 + t * (y1 - y0), pressed=True)
        self.mouse("mouseReleased", *points[-1], pressed=False)

    def click(self, selector: str) -> None:
        """Click the middle of the element ``selector`` names."""
        box = self.evaluate(
            f"(() => {{ const b = document.querySelector({json.dumps(selector)})"
            ".getBoundingClientRect(); return [b.x + b.width / 2, b.y + b.height / 2]; })()"
        )
        self.mouse("mousePressed", *box, pressed=True)
        self.mouse("mouseReleased", *box, pressed=False)

    def screenshot(self, path: str | Path) -> None:
        """The viewport as a PNG file."""
        data = self.call("Page.captureScreenshot", session=True, format="png")["data"]
        Path(path).write_bytes(base64.b64decode(data))

    def requested_urls(self) -> list[str]:
        """Every URL the page asked for so far (Network.requestWillBeSent events)."""
        return [
            e["params"]["request"]["url"]
            for e in self.events
            if e.get("method") == "Network.requestWillBeSent"
        ]
