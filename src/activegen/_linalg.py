"""Small-d linear algebra written as broadcast-multiply-and-sum.

Under `vmap` over particles, `@`/`einsum` on (K, d, d) blocks become tiny batched
dot_generals, which XLA CPU runs several times slower than the same contraction written
elementwise (which it fuses with the surrounding exponentials); benchmarks/bench_samplers.py.
"""

import jax.numpy as jnp


def matvec(a, v):
    """(..., i, j) · (..., j) -> (..., i): Σ_j a_ij v_j."""
    return jnp.sum(a * v[..., None, :], -1)

