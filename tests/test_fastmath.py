"""The float32 sin/cos polynomial of the learned pass (activegen._fastmath)."""

import jax.numpy as jnp
import numpy as np

from activegen._fastmath import sincos


def test_sincos_float32_within_two_ulp_of_the_float64_values():
    rng = np.random.default_rng(0)
    theta = np.concatenate([rng.uniform(-4.0, 4.0, 50_000), rng.uniform(-3e3, 3e3, 50_000),
                            np.arange(-8, 9) * np.pi / 4]).astype(np.float32)
    s, c = (np.asarray(a, np.float64) for a in sincos(jnp.asarray(theta)))
    t64 = theta.astype(np.float64)
    assert np.max(np.abs(s - np.sin(t64))) < 4e-7 and np.max(np.abs(c - np.cos(t64))) < 4e-7
    assert sincos(jnp.asarray(theta))[0].dtype == jnp.float32


def test_sincos_float64_is_jnp():
    import jax

    with jax.enable_x64(True):
        t = jnp.linspace(-50.0, 50.0, 1001, dtype=jnp.float64)
        s, c = sincos(t)
        assert s.dtype == jnp.float64
        np.testing.assert_array_equal(np.asarray(s), np.asarray(jnp.sin(t)))
        np.testing.assert_array_equal(np.asarray(c), np.asarray(jnp.cos(t)))
