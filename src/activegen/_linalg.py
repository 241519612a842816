"""Small-d linear algebra written as broadcast-multiply-and-sum.

`matvec` contracts trailing axes (leading batch axes, e.g. the K mixture components);
`matvec0` and `dot0` contract leading vector axes and carry any trailing particle axes,
so that a per-point formula (x of shape (d,)) also runs on a whole ensemble (d, N) in the
samplers' particles-last layout, without vmap (whose batching moves the particle axis
first and puts transposes into the fused loops; docs/performance.md).

Under `vmap` over particles, `@`/`einsum` on (K, d, d) blocks become tiny batched
dot_generals, which XLA CPU runs several times slower than the same contraction written
elementwise (which it fuses with the surrounding exponentials); benchmarks/bench_samplers.py.
"""

import jax.numpy as jnp


def matvec(a, v):
    """(..., i, j) · (..., j) -> (..., i): Σ_j a_ij v_j."""
    return jnp.sum(a * v[..., None, :], -1)


def matvec0(a, v):
    """(i, j, ...) · (j, ...) -> (i, ...): Σ_j a_ij v_j, vector axes first (unrolled over i
    and j: elementwise ops on the particle arrays only, which XLA fuses into one loop)."""
    return jnp.stack([sum(a[i, j] * v[j] for j in range(v.shape[0])) for i in range(a.shape[0])])


def dot0(u, v):
    """(i, ...) · (i, ...) -> (...): Σ_i u_i v_i, vector axis first (unrolled)."""
    return sum(u[i] * v[i] for i in range(u.shape[0]))
