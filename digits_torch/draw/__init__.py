"""Draw a digit and watch the network read it: a local page (``digits-draw``, or
``python -m digits_torch draw``).

The page (``static/``, every asset in the package: it needs no network) has a canvas to draw on
with a mouse, pen or finger. Each stroke sends the drawing, as a PNG, to the server, which makes it
into the 20 x 20 input exactly as ``digits-predict`` does (:mod:`digits_torch.images.images`) and
answers with the input, the hidden units' activations and the ten probabilities; the page draws
them, each hidden unit as the image of its incoming weights, lit by its activation. docs/draw.md
describes the page and the HTTP API.

    from digits_torch.draw.reader import Reader
    Reader().predict_bytes(open("seven.png", "rb").read())["digit"]
"""
