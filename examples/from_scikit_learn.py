"""The article's script with one line changed: scikit-learn's MLPClassifier import became
digits_torch's. It loads the digits, draws 100 of them, trains the article's network with relu
and with logistic units (printing their training accuracy: 0.9658 and 0.9186 on the shipped
digits), draws the relu network's 25 hidden units from ``coefs_[0]`` and its mistakes.

    python examples/from_scikit_learn.py                       # the shipped digits
    python examples/from_scikit_learn.py ex4data1.mat --out pictures
    python examples/from_scikit_learn.py --epochs 30           # a quick look (not the article's)
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import scipy.io  # noqa: E402

from digits_torch import MLPClassifier  # was: from sklearn.neural_network import MLPClassifier
from digits_torch.core.data import default_data_path  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("data", nargs="?", default=str(default_data_path()), help="an ex4 .mat file")
parser.add_argument("--out", default=".", help="where the three pictures go")
parser.add_argument(
    "--epochs", type=int, default=1000, help="max_iter (default: the article's 1000)"
)
args = parser.parse_args()
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)

# 1. the data: X (5000, 400), each row a 20 x 20 image unrolled column-major; y 1..10
data = scipy.io.loadmat(args.data)
X, y = data["X"], data["y"].ravel()


def show(images, titles, rows, cols, path):
    """Each row of images as a 20 x 20 picture (unrolled column-major, as ex4 stores them)."""
    fig, axes = plt.subplots(rows, cols, figsize=(cols, rows * 1.15))
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, title in zip(axes.ravel(), images, titles):
        ax.imshow(image.reshape(20, 20, order="F"), cmap="gray")
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# 2. 100 random digits
rows = np.random.RandomState(0).choice(len(X), 100, replace=False)
show(X[rows], [str(label % 10) for label in y[rows]], 10, 10, out / "digits.png")

# 3. the article's network, relu and logistic units
for activation in ("relu", "logistic"):
    clf = MLPClassifier(
        hidden_layer_sizes=(25,),
        activation=activation,
        solver="sgd",
        random_state=0,
        max_iter=args.epochs,
        alpha=1e-4,
        tol=1e-9,
    )
    clf.fit(X, y)
    print(f"{activation}: training accuracy {clf.score(X, y):.4f}")
    if activation == "relu":
        relu = clf

# 4. the 25 hidden units: each column of coefs_[0] as a 20 x 20 image
show(relu.coefs_[0].T, [f"unit {i + 1}" for i in range(25)], 5, 5, out / "hidden_units.png")

# 5. the mistakes: predicted (true)
wrong = np.flatnonzero(relu.predict(X) != y)
predicted = relu.predict(X[wrong])
titles = [f"{p % 10} ({t % 10})" for p, t in zip(predicted, y[wrong])]
shown = min(len(wrong), 100)
side = int(np.ceil(np.sqrt(shown)))
show(X[wrong[:shown]], titles[:shown], side, side, out / "mistakes.png")
print(f"{len(wrong)} mistakes; pictures in {out}")
