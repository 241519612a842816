"""Training data: built-in 2D sets, the image point cloud, user files, standardisation."""

from importlib import resources

import numpy as np
import pytest

from activegen.learning.datasets import BUILTIN, Standardizer, image_points, load_array, load_data
from activegen.errors import ActivegenError


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_builtin_shapes_and_seeds(name):
    a = load_data(name, n=500, seed=1)
    assert a.shape == (500, 2) and np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, load_data(name, n=500, seed=1))
    assert not np.allclose(a, load_data(name, n=500, seed=2))
    assert a.std(0).min() > 0.05


def test_shipped_image_small_and_cloud_in_frame():
    ref = resources.files("activegen") / "data" / "example.png"
    assert ref.is_file() and len(ref.read_bytes()) < 50_000
    pts = image_points(2000, seed=0)
    assert pts[:, 0].min() >= 0 and pts[:, 1].max() <= 0  # x = column, y = −row, over height
    assert pts[:, 0].max() <= 1.0 + 1e-9 and pts[:, 1].min() >= -1.0 - 1e-9


def test_npy_and_csv_loading(tmp_path):
    x = np.random.default_rng(0).normal(size=(50, 3))
    np.save(tmp_path / "a.npy", x)
    np.testing.assert_allclose(load_data(str(tmp_path / "a.npy")), x)
    (tmp_path / "a.csv").write_text("u,v,w\n" + "\n".join(",".join(map(str, r.tolist())) for r in x))
    np.testing.assert_allclose(load_data(str(tmp_path / "a.csv")), x)


@pytest.mark.parametrize("content,name,msg", [
    (None, "missing.npy", "not found"),
    ("1,2\n3,4\n", "a.txt", ".npy or .csv"),
    ("1,2\n3,x\n", "a.csv", "not numbers"),
    ("1,2\n3\n", "a.csv", "different numbers of columns"),
    ("1,2\nnan,4\n", "a.csv", "NaN"),
    ("1,2\n", "a.csv", "N >= 2"),
    ("1,2\n1,2\n", "a.csv", "all points are equal"),
])
def test_loading_errors(tmp_path, content, name, msg):
    p = tmp_path / name
    if content is not None:
        p.write_text(content)
    with pytest.raises(ActivegenError, match=msg):
        load_data(str(p))


def test_bad_npy_and_unknown_name(tmp_path):
    np.save(tmp_path / "b.npy", np.zeros((2, 2, 2)))
    with pytest.raises(ActivegenError, match="N × d"):
        load_array(tmp_path / "b.npy")
    (tmp_path / "c.npy").write_text("garbage")
    with pytest.raises(ActivegenError, match="cannot read"):
        load_array(tmp_path / "c.npy")
    with pytest.raises(ActivegenError, match="unknown data set"):
        load_data("three-moons")


def test_standardizer_round_trip():
    x = np.random.default_rng(1).normal(size=(400, 2)) * [3.0, 1.0] + [5.0, -2.0]
    st = Standardizer.fit(x)
    z = st.forward(x)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(np.mean(z.var(0)), 1.0)
    np.testing.assert_allclose(z[:, 0].std() / z[:, 1].std(), x[:, 0].std() / x[:, 1].std())
    np.testing.assert_allclose(st.inverse(z), x)
    assert Standardizer.from_dict(st.to_dict()) == st
