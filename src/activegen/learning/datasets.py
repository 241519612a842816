"""Training data for learned scores: built-in 2D sets, an image point cloud, user files.

`load_data(name_or_path, n, seed)` returns an (N, d) float64 array:

* built-in 2D sets (`BUILTIN`): two-moons, swiss-roll, rings, checkerboard,
  eight-gaussians, pinwheel — drawn with numpy from `seed`;
* `image` (the small grayscale PNG shipped as package data, `data/example.png`) or
  `image:PATH.png`: a 2D point cloud with density ∝ darkness of the pixels (`image_points`);
* `digits`: scikit-learn's 8×8 handwritten digits (shipped with scikit-learn, no download),
  pixels scaled to [−1, 1] as x/8 − 1, the training split (`digits(split)`: images
  0–1499 in scikit-learn's order for training, 1500–1796 held out; `n` ignored);
* a user file `PATH.npy` or `PATH.csv` (N × d numbers, CSV with an optional header line),
  used as it is (`n` ignored).

`IMAGE_SHAPES` names the sets whose points are images (plots draw them as tiles).

Learned models live in standardised coordinates z = (x − mean)/scale (`Standardizer`,
one mean per coordinate and one common scale, the root-mean coordinate variance, so that
the shape and the process' isotropy are kept); the statistics are stored in the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import ActivegenError, check_count

EXAMPLE_IMAGE = "example.png"


def _rng(seed):
    return np.random.default_rng(int(seed))


def two_moons(n: int, seed: int = 0, noise: float = 0.08) -> np.ndarray:
    """Two interleaved half circles (radius 1), Gaussian noise of sd `noise`."""
    r = _rng(seed)
    th = np.pi * r.uniform(size=n)
    up = r.uniform(size=n) < 0.5
    x = np.where(up, np.cos(th), 1.0 - np.cos(th))
    y = np.where(up, np.sin(th), 0.5 - np.sin(th))
    return np.stack([x, y], 1) + noise * r.normal(size=(n, 2))


def swiss_roll(n: int, seed: int = 0, noise: float = 0.15) -> np.ndarray:
    """2D swiss roll: t ∈ [1.5π, 4.5π], (t cos t, t sin t)/3 plus Gaussian noise."""
    r = _rng(seed)
    t = 1.5 * np.pi * (1 + 2 * r.uniform(size=n))
    pts = np.stack([t * np.cos(t), t * np.sin(t)], 1) / 3.0
    return pts + noise * r.normal(size=(n, 2))


def rings(n: int, seed: int = 0, radii=(1.0, 2.0, 3.0), noise: float = 0.08) -> np.ndarray:
    """Concentric circles, points per ring ∝ radius."""
    r = _rng(seed)
    radii = np.asarray(radii, float)
    k = r.choice(len(radii), size=n, p=radii / radii.sum())
    th = 2 * np.pi * r.uniform(size=n)
    pts = radii[k, None] * np.stack([np.cos(th), np.sin(th)], 1)
    return pts + noise * r.normal(size=(n, 2))


def checkerboard(n: int, seed: int = 0) -> np.ndarray:
    """Uniform on the black squares of a 4×4 board on [−2, 2]²."""
    r = _rng(seed)
    x1 = r.uniform(-2, 2, size=n)
    x2 = r.uniform(0, 1, size=n) + r.integers(0, 2, size=n) * 2.0 - 2.0
    x2 = x2 + (np.floor(x1) % 2)
    return np.stack([x1, x2], 1)


def eight_gaussians(n: int, seed: int = 0, radius: float = 2.0, sd: float = 0.15) -> np.ndarray:
    """Eight Gaussian modes of sd `sd` on a circle of radius `radius`."""
    r = _rng(seed)
    ang = 2 * np.pi * r.integers(0, 8, size=n) / 8
    centers = radius * np.stack([np.cos(ang), np.sin(ang)], 1)
    return centers + sd * r.normal(size=(n, 2))


def pinwheel(n: int, seed: int = 0, arms: int = 5, radial_sd: float = 0.3,
             tangential_sd: float = 0.08, rate: float = 0.25) -> np.ndarray:
    """Pinwheel of `arms` curved arms (the classic of Johnson et al. 2016)."""
    r = _rng(seed)
    k = r.integers(0, arms, size=n)
    feats = r.normal(size=(n, 2)) * np.array([radial_sd, tangential_sd])
    feats[:, 0] += 1.0
    ang = 2 * np.pi * k / arms + rate * np.exp(feats[:, 0])
    c, s = np.cos(ang), np.sin(ang)
    rot = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)  # (n, 2, 2)
    return 2.0 * np.einsum("ni,nji->nj", feats, rot)


def _read_gray(path) -> np.ndarray:
    """A PNG as a 2D array of gray levels in [0, 1] (RGB(A) averaged)."""
    import matplotlib.image as mpimg

    try:
        img = np.asarray(mpimg.imread(str(path)), float)
    except (OSError, ValueError, SyntaxError) as exc:
        raise ActivegenError(f"cannot read image {path}: {exc}") from None
    if img.ndim == 3:
        img = img[..., :3].mean(-1)
    if img.ndim != 2 or min(img.shape) < 2:
        raise ActivegenError(f"image {path} is not a 2D picture (shape {img.shape})")
    if img.max() > 1.0:
        img = img / 255.0
    return img


def image_points(n: int, seed: int = 0, path=None) -> np.ndarray:
    """A 2D point cloud from a grayscale image: pixel (i, j) is drawn with probability ∝
    its darkness 1 − gray, then jittered uniformly inside the pixel; x = column,
    y = −row (image upright), both divided by the image height."""
    if path is None:
        ref = resources.files("activegen") / "data" / EXAMPLE_IMAGE
        with resources.as_file(ref) as p:
            img = _read_gray(p)
    else:
        img = _read_gray(path)
    w = np.clip(1.0 - img, 0.0, None).ravel()
    if w.sum() <= 0:
        raise ActivegenError(f"image {path or EXAMPLE_IMAGE} is blank (no dark pixels)")
    r = _rng(seed)
    idx = r.choice(w.size, size=n, p=w / w.sum())
    rows, cols = np.divmod(idx, img.shape[1])
    jit = r.uniform(size=(n, 2))
    h = img.shape[0]
    return np.stack([(cols + jit[:, 0]) / h, -(rows + jit[:, 1]) / h], 1)


BUILTIN = {
    "two-moons": two_moons,
    "swiss-roll": swiss_roll,
    "rings": rings,
    "checkerboard": checkerboard,
    "eight-gaussians": eight_gaussians,
    "pinwheel": pinwheel,
    "image": image_points,
}


def load_array(path) -> np.ndarray:
    """(N, d) user data from .npy or .csv (comma-separated, optional header line).

    Rejects: missing file, other suffixes, unparsable text, not 2D / fewer than 2 rows,
    NaN or inf."""
    p = Path(path)
    if not p.is_file():
        raise ActivegenError(f"data file not found: {path}")
    suffix = p.suffix.lower()
    try:
        if suffix == ".npy":
            a = np.load(p, allow_pickle=False)
        elif suffix == ".csv":
            a = read_csv(p)
        else:
            raise ActivegenError(
                f"data file must end in .npy or .csv, got {p.name!r} "
                f"(built-in sets: {', '.join(BUILTIN)})"
            )
    except ActivegenError:
        raise
    except Exception as exc:  # numpy's many parse errors
        raise ActivegenError(f"cannot read data file {path}: {exc}") from None
    return check_data(a, str(path))


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def read_csv(p) -> np.ndarray:
    """The rows of a comma-separated file (blank lines skipped). The first line is a header
    only when none of its fields is a number (`x,y`); a line that mixes numbers and text
    (`1.0,2.o`: a typo in the first data row) is an error naming its line, never dropped."""
    p = Path(p)
    lines = [(i + 1, ln) for i, ln in enumerate(p.read_text().splitlines()) if ln.strip()]
    if not lines:
        raise ActivegenError(f"data file {p} is empty")
    first_no, first = lines[0][0], lines[0][1].split(",")
    if not any(_is_number(v) for v in first):
        lines = lines[1:]  # a header line: no field is a number
    rows = []
    for i, ln in lines:
        fields = ln.split(",")
        bad = [v.strip() for v in fields if not _is_number(v)]
        if bad:
            raise ActivegenError(
                f"data file {p}: line {i} is not numbers ({bad[0]!r} in {ln[:60]!r})"
                + (" (a header line may hold no numbers)" if i == first_no else ""))
        rows.append([float(v) for v in fields])
    if len({len(r) for r in rows}) > 1:
        raise ActivegenError(f"data file {p}: rows have different numbers of columns")
    return np.asarray(rows, float)


DIGITS_N_TRAIN = 1500  #: images 0–1499 train, 1500–1796 are held out
DIGITS_SHAPE = (8, 8)
IMAGE_SHAPES = {"digits": DIGITS_SHAPE}


def digits(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 64) in [−1, 1] as x/8 − 1, labels (N,)) of scikit-learn's digits:
    split "train" (images 0–1499), "held-out" (1500–1796) or "all"."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = d.data / 8.0 - 1.0, d.target.astype(np.int64)
    cut = {"train": slice(0, DIGITS_N_TRAIN), "held-out": slice(DIGITS_N_TRAIN, None),
           "all": slice(None)}
    if split not in cut:
        raise ActivegenError(f"digits split must be one of {', '.join(cut)}; got {split!r}")
    return x[cut[split]], y[cut[split]]


#: a point is out of range beyond the data's range ± this fraction of its span
RANGE_MARGIN = 0.25


def out_of_range(x, lo: float, hi: float, margin: float) -> float:
    """Fraction of the points (N, d) with some coordinate outside [lo − margin, hi + margin]."""
    x = np.asarray(x)
    return float(np.mean(np.any((x < lo - margin) | (x > hi + margin), axis=1)))


def check_data(a, what: str = "data") -> np.ndarray:
    """An (N, d) finite float array with N ≥ 2, or a one-line ActivegenError."""
    a = np.asarray(a)
    if a.dtype.kind not in "iuf":
        raise ActivegenError(f"{what}: expected numbers, got dtype {a.dtype}")
    a = a.astype(float)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[0] < 2 or a.shape[1] < 1:
        raise ActivegenError(f"{what}: expected an N × d array with N >= 2, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ActivegenError(f"{what}: holds NaN or inf values")
    if np.all(np.ptp(a, 0) == 0):  # (not std: it overflows for data near 1e300)
        raise ActivegenError(f"{what}: all points are equal (cannot standardise)")
    return a


def load_data(name_or_path: str, n: int = 10_000, seed: int = 0) -> np.ndarray:
    """A built-in set (n points from seed), `image:PATH.png`, or a .npy/.csv file."""
    name = str(name_or_path)
    if name in BUILTIN:
        n = check_count("n", n)
        return BUILTIN[name](n, seed)
    if name == "digits":
        return digits("train")[0]
    if name.startswith("image:"):
        return image_points(check_count("n", n), seed, name[len("image:"):])
    if not Path(name).suffix and not Path(name).exists():
        raise ActivegenError(
            f"unknown data set {name!r}: choose one of {', '.join(BUILTIN)}, digits, "
            "image:PATH.png, or a .npy/.csv file"
        )
    return load_array(name)


@dataclass(frozen=True)
class Standardizer:
    """z = (x − mean)/scale: mean per coordinate, one scale (root-mean coordinate variance)."""

    mean: tuple
    scale: float

    @classmethod
    def fit(cls, x) -> "Standardizer":
        x = check_data(x)
        big = float(np.max(np.abs(x)))
        if big < 1e150:
            return cls(tuple(float(m) for m in x.mean(0)), float(np.sqrt(np.mean(x.var(0)))))
        # data near float64's range (1e300): in units of the largest |x|, so that neither
        # the mean nor the variance overflows
        u = x / big
        return cls(tuple(float(m) * big for m in u.mean(0)),
                   float(np.sqrt(np.mean(u.var(0)))) * big)

    @classmethod
    def identity(cls, d: int) -> "Standardizer":
        return cls((0.0,) * d, 1.0)

    def forward(self, x):
        return (np.asarray(x) - np.asarray(self.mean)) / self.scale

    def inverse(self, z):
        """x = scale·z + mean, computed in float64 and returned in z's dtype where it fits
        there (float32 samples of data at 1e300 scale come back as float64, not inf)."""
        z = np.asarray(z)
        x = z.astype(np.float64) * self.scale + np.asarray(self.mean, np.float64)
        if z.dtype.kind == "f" and z.dtype != np.float64:
            top = float(np.finfo(z.dtype).max)
            if np.all(np.abs(x[np.isfinite(x)]) < top):
                return x.astype(z.dtype)
        return x

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "scale": self.scale}

    @classmethod
    def from_dict(cls, d: dict) -> "Standardizer":
        return cls(tuple(float(m) for m in d["mean"]), float(d["scale"]))
