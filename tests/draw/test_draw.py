"""digits-draw's server on loopback: real PNGs in, the reading ``digits-predict`` gives out; bad
requests each a 4xx JSON error while the server goes on serving; only its own assets served."""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageDraw
import pytest
from conftest import png_of_size  # a PNG header claiming any size, and no pixels

from digits_torch.cli.draw import main, serve
from digits_torch.core.data import to_image
from digits_torch.draw.reader import image_bytes_to_input
from digits_torch.draw.server import MAX_BODY
from digits_torch.inference.model_card import shipped_model
from digits_torch.inference.predict import predict_images

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "digits_torch" / "draw" / "static"


@pytest.fixture(scope="module")
def server():
    """The page's server for the shipped model, on a free loopback port, in a thread."""
    running = serve(None)
    thread = threading.Thread(target=running.serve_forever, daemon=True)
    thread.start()
    yield running
    running.shutdown()
    running.server_close()


def request(server, method: str, path: str, body: bytes | None = None, headers=None):
    """One request on a new connection: (status, headers, body parsed as JSON where it is)."""
    host, port = server.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=30)
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    kind = response.getheader("Content-Type", "")
    return response.status, response, json.loads(data) if kind == "application/json" else data


def png(image: PIL.Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def shipped_png(row: np.ndarray, side: int = 140) -> bytes:
    """A shipped digit as a person would hand it in: dark ink on white, ``side`` pixels."""
    ink = np.clip(to_image(row), 0, 1)
    image = PIL.Image.fromarray(np.uint8(np.round(255 * (1 - ink))))
    return png(image.resize((side, side), PIL.Image.Resampling.BICUBIC))


def drawn_seven() -> bytes:
    """A 7 as the page sends one: black strokes on a white 140 x 140 PNG."""
    image = PIL.Image.new("RGB", (140, 140), "white")
    PIL.ImageDraw.Draw(image).line([(32, 28), (108, 28), (58, 120)], fill="black", width=11)
    return png(image)


def assert_serving(server) -> None:
    status, _, answer = request(server, "POST", "/predict", drawn_seven())
    assert status == 200 and answer["digit"] == 7


def test_a_drawn_seven_reads_as_predict_reads_it(server, tmp_path):
    body = drawn_seven()
    status, response, answer = request(server, "POST", "/predict", body, {"Content-Type": "x/y"})
    assert status == 200 and response.getheader("Content-Type") == "application/json"
    (tmp_path / "seven.png").write_bytes(body)
    (expected,) = predict_images(shipped_model(), [tmp_path / "seven.png"])
    assert answer["digit"] == expected.digit == 7
    assert answer["probabilities"] == list(expected.probabilities)
    assert answer["input"] == expected.pixels.astype(float).tolist()  # column-major, 400
    assert len(answer["hidden"]) == 25 and min(answer["hidden"]) >= 0  # relu units
    assert max(answer["hidden"]) > 0


def test_shipped_digits_rendered_as_pngs_read_as_their_digits(server, digits, tmp_path):
    X, y = digits
    chosen = [int(np.flatnonzero(y == d)[0]) for d in range(10)]
    paths = []
    for k in chosen:
        paths.append(tmp_path / f"{k}.png")
        paths[-1].write_bytes(shipped_png(X[k]))
    expected = predict_images(shipped_model(), paths)
    for path, prediction in zip(paths, expected):
        status, _, answer = request(server, "POST", "/predict", path.read_bytes())
        assert status == 200
        assert answer["digit"] == prediction.digit
        assert answer["probabilities"] == list(prediction.probabilities)
    read = [p.digit for p in expected]
    assert np.mean(np.array(read) == y[chosen]) >= 0.9, read


def test_multipart_upload_reads_the_same(server):
    body = drawn_seven()
    boundary = "----digits-draw-test"
    form = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="7.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + body
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    status, _, answer = request(server, "POST", "/predict", form, headers)
    assert status == 200
    assert answer == request(server, "POST", "/predict", body)[2]


def test_jpeg_reads_too(server):
    buffer = io.BytesIO()
    PIL.Image.open(io.BytesIO(drawn_seven())).save(buffer, format="JPEG", quality=90)
    status, _, answer = request(server, "POST", "/predict", buffer.getvalue())
    assert status == 200 and answer["digit"] == 7


BAD_BODIES = {
    "empty": (b"", "an empty body, not an image"),
    "text": (b"seven, honestly", "not an image in a format this reads"),
    "truncated": (drawn_seven()[:200], "truncated or damaged image"),
    "over 40 megapixels": (png_of_size(8000, 6000), "8000 x 6000 pixels is over the limit of 40"),
    "blank": (png(PIL.Image.new("L", (100, 100), 255)), "blank"),
    "postscript": (b"%!PS-Adobe-3.0\n", "PostScript or PDF, not a raster image"),
}


@pytest.mark.parametrize("name", BAD_BODIES)
def test_a_bad_body_is_a_400_and_the_server_goes_on(server, name):
    body, problem = BAD_BODIES[name]
    status, _, answer = request(server, "POST", "/predict", body)
    assert status == 400
    assert problem in answer["error"]
    assert "digits-draw-" not in answer["error"]  # never the temporary file's name
    assert_serving(server)


def _raw(server, text: bytes) -> tuple[int, dict]:
    """Send bytes as they are (no client tidying the path or headers); status and JSON body."""
    with socket.create_connection(server.server_address[:2], timeout=30) as connection:
        connection.sendall(text)
        reply = b""
        while chunk := connection.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_an_oversized_body_is_refused_unread(server):
    size = MAX_BODY + 1
    status, answer = _raw(
        server, f"POST /predict HTTP/1.1\r\nContent-Length: {size}\r\n\r\n".encode()
    )
    assert status == 413 and "over the limit of 10 MB" in answer["error"]
    status, answer = _raw(server, b"POST /predict HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 411 and "Content-Length" in answer["error"]
    assert_serving(server)


@pytest.mark.parametrize(
    "method, path, expected",
    [
        ("PUT", "/predict", 405),
        ("DELETE", "/", 405),
        ("GET", "/predict", 405),
        ("POST", "/model", 405),
        ("POST", "/elsewhere", 404),
        ("GET", "/nothing-here", 404),
        ("BREW", "/", 405),
    ],
)
def test_wrong_method_or_path_is_a_json_4xx(server, method, path, expected):
    status, _, answer = request(server, method, path, b"")
    assert status == expected and answer["error"]
    assert_serving(server)


TRAVERSALS = [
    "/../../../../etc/passwd",
    "/static/../server.py",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/..%2f..%2fserver.py",
    "//etc/passwd",
    "/draw.js/../reader.py",
    "/./draw.js/..%5c..%5cserver.py",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_no_url_reaches_a_file_outside_the_assets(server, path):
    status, answer = _raw(server, f"GET {path} HTTP/1.1\r\nConnection: close\r\n\r\n".encode())
    assert status == 404 and answer["error"].startswith("no such page")
    assert_serving(server)


def test_the_page_and_its_assets_are_served_from_the_package_alone(server):
    status, response, page = request(server, "GET", "/")
    assert status == 200 and b'<canvas id="pad"' in page
    assert "default-src 'self'" in response.getheader("Content-Security-Policy")
    for name in ("draw.js", "draw.css"):
        status, _, body = request(server, "GET", f"/{name}")
        assert status == 200 and body == (STATIC / name).read_bytes()
    for path in STATIC.iterdir():  # nothing fetched from elsewhere: no font, script or style
        text = path.read_text().replace("http://www.w3.org/2000/svg", "")  # a name, not a fetch
        assert not re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}", text), path


def test_model_describes_the_model(server):
    status, _, model = request(server, "GET", "/model")
    assert status == 200
    assert model["name"] == "the shipped model"
    assert model["architecture"]["hidden_sizes"] == [25]
    assert np.array(model["hidden_weights"]).shape == (25, 400)
    assert len(model["dead_units"]) == 25
    assert model["card"]["accuracies"]["train_accuracy"] == model["shipped_digits"]["accuracy"]
    assert model["shipped_digits"]["mistakes"] == round(
        5000 * (1 - model["card"]["accuracies"]["train_accuracy"])
    )


def test_random_digits_and_mistakes_are_shipped_digits(server, digits):
    X, y = digits
    for path in ("/random-digit", "/random-mistake"):
        status, _, answer = request(server, "GET", path)
        assert status == 200
        k = answer["index"]
        assert answer["label"] == y[k]
        assert answer["input"] == X[k].astype(float).tolist()
    assert answer["digit"] != answer["label"]  # the mistake


def test_fifty_concurrent_requests_each_get_their_own_answer(server, digits):
    X, y = digits
    rows = [int(k) for k in np.linspace(0, len(y) - 1, 50)]
    bodies = [shipped_png(X[k], side=100) for k in rows]
    alone = [image_bytes_to_input(body).astype(float).tolist() for body in bodies]
    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(lambda b: request(server, "POST", "/predict", b), bodies))
    assert [status for status, _, _ in answers] == [200] * 50
    assert [answer["input"] for _, _, answer in answers] == alone


def test_the_command_serves_until_ctrl_c(tmp_path):
    command = [sys.executable, "-m", "digits_torch", "draw", "--no-browser"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        line = process.stdout.readline()
        assert line.startswith("digits-draw: the shipped model at http://127.0.0.1:"), line
        url = line.split(" at ")[1].split()[0]
        host, port = url.removeprefix("http://").rstrip("/").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        connection.request("GET", "/model")
        assert connection.getresponse().status == 200
        connection.close()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0 and out == "stopped\n" and err == ""


def test_a_port_in_use_is_one_error_line(server):
    port = server.server_address[1]
    ran = subprocess.run(
        [sys.executable, "-m", "digits_torch", "draw", "--no-browser", "--port", str(port)],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120,
    )  # fmt: skip
    assert ran.returncode == 2
    assert (
        ran.stderr
        == f"error: 127.0.0.1 port {port} is in use; give another --port, or none for a free one\n"
    )


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_a_port_that_is_none_is_one_error_line(port, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--no-browser", "--port", port])
    assert stop.value.code == 2
    assert "a port is a number from 0 to 65535" in capsys.readouterr().err
