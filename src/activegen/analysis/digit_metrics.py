"""Quality of generated 8×8 digits, each figure with its real-against-real floor.

Features: the hidden layer (64 ReLU units) of a small classifier, scikit-learn's
`MLPClassifier` trained on the training split of `datasets.digits` (images 0–1499) with a
fixed seed — deterministic, trained once per process (`classifier()`), 92.6 % accurate on
the held-out images 1500–1796. In those features (`metrics`):

* Fréchet distance (FD) of the samples to the held-out images;
* k-NN precision and recall (k = 3) against the held-out images;
* the class proportions the classifier assigns (and the smallest);
* the memorisation ratio in pixel space: median nearest-training-image distance of the
  samples over that of the held-out images (≥ 0.7: no copying).

Floors (`floor_report`): the same figures for training images (a random subset of the
samples' size) in place of the samples: what a perfect sampler of the data law scores.
"""

from __future__ import annotations

import functools

import numpy as np

from . import metrics
from ..learning import datasets
from ..learning.datasets import DIGITS_SHAPE, digits
from ..errors import ActivegenError

D = DIGITS_SHAPE[0] * DIGITS_SHAPE[1]
K_NN = 3
N_CLASSES = 10


@functools.lru_cache(maxsize=1)
def classifier():
    """The feature classifier (sklearn MLPClassifier, 64 hidden units, seed 0)."""
    from sklearn.neural_network import MLPClassifier

    x, y = digits("train")
    return MLPClassifier(hidden_layer_sizes=(64,), alpha=1e-3, max_iter=1000,
                         random_state=0).fit(x, y)


def check_images(x, what: str = "samples") -> np.ndarray:
    """(N, 64) finite images in the digits' scale [−1, 1], or a one-line ActivegenError."""
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[1] != D or len(x) < K_NN + 1:
        raise ActivegenError(
            f"{what}: digit metrics need an (N, {D}) array of 8x8 images in the digits' "
            f"scale x/8 - 1 with N >= {K_NN + 1}; got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ActivegenError(f"{what}: holds NaN or inf values")
    return x


def features(x) -> np.ndarray:
    """The classifier's hidden-layer activations (N, 64) of images (N, 64)."""
    c = classifier()
    return np.maximum(np.asarray(x, np.float64) @ c.coefs_[0] + c.intercepts_[0], 0.0)


def class_proportions(x) -> np.ndarray:
    """Fraction of the images the classifier assigns to each digit 0–9."""
    pred = classifier().predict(np.asarray(x, np.float64))
    return np.bincount(pred, minlength=N_CLASSES) / len(pred)


def out_of_range(x) -> float:
    """Fraction of images with some pixel outside [−1.5, 1.5] (the pixel range ±
    datasets.RANGE_MARGIN of its span, as `LearnedScore.range_report`)."""
    return datasets.out_of_range(x, -1.0, 1.0, datasets.RANGE_MARGIN * (1.0 - -1.0))


def report(samples) -> dict:
    """FD, precision, recall, class proportions, memorisation ratio and out-of-range
    fraction of generated digits (N, 64) against the held-out images (module doc)."""
    x = check_images(samples)
    train, _ = digits("train")
    held, _ = digits("held-out")
    fh, fx = features(held), features(x)
    p, r = metrics.knn_precision_recall(fh, fx, K_NN)
    cls = class_proportions(x)
    return {"fd": metrics.frechet_distance(fx, fh), "precision": p, "recall": r,
            "classes": cls.tolist(), "min_class": float(cls.min()),
            "memorisation": metrics.memorisation_ratio(x, train, held),
            "out_of_range": out_of_range(x), "n": len(x)}


def floor_report(n: int, seed: int = 0) -> dict:
    """`report` of min(n, 1500) training images drawn without replacement (seed): the
    floor of each figure at the samples' size (memorisation is then < 1 by construction:
    the images are training images, so it is left out)."""
    train, _ = digits("train")
    idx = np.random.default_rng(seed).choice(len(train), min(int(n), len(train)), replace=False)
    rep = report(train[idx])
    rep.pop("memorisation")
    return rep
