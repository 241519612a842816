"""XLA CPU settings applied when activegen is imported (before JAX starts its backend).

jaxlib 0.10 routes the elementwise fusions of the samplers through its YNNPACK emitter,
which runs them 3–50× slower than XLA's own loop emitter on these kernels (measured:
`fox`, 2D 8-mode mixture, 10⁵ particles, 2 cores, the batched closed form: 7·10⁵ with it
against 2.2–2.5·10⁷ particle-steps/s without; docs/performance.md). We switch it off with
    XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=
unless the user set that flag already, set ACTIVEGEN_KEEP_XLA_FLAGS=1, or runs another
jaxlib (an unknown flag aborts XLA, so it is only added where it is known to exist).
The flag only takes effect if no JAX computation ran before activegen was imported.
pyproject.toml bounds jax below 0.11 (the range measured); on any other jaxlib the flag is
left out (safe: nothing is passed that XLA may not know, the speed is then unmeasured).

`unrolled_threefry` (a context manager around the samplers' compilation) lowers JAX's
random-bit hash without its CPU while loop, so that it fuses with what uses the bits.
"""

import contextlib
import os
from importlib.metadata import PackageNotFoundError, version

YNN_FLAG = "--xla_cpu_experimental_ynn_fusion_type="
_KNOWN = ("0.10.",)


def configure() -> bool:
    """Add YNN_FLAG to XLA_FLAGS where safe; True if it is set after the call."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_experimental_ynn_fusion_type" in flags:
        return YNN_FLAG in flags.split()
    if os.environ.get("ACTIVEGEN_KEEP_XLA_FLAGS"):
        return False
    try:
        jaxlib_version = version("jaxlib")
    except PackageNotFoundError:
        return False
    if not jaxlib_version.startswith(_KNOWN):
        return False
    os.environ["XLA_FLAGS"] = f"{flags} {YNN_FLAG}".strip()
    return True


@contextlib.contextmanager
def unrolled_threefry():
    """Within the block, JAX lowers threefry2x32 on the CPU with its 20 rounds unrolled
    (JAX's rule for the other platforms) instead of JAX's CPU rule, a 5-step while loop.

    The loop keeps programs small but XLA cannot fuse it with the normal draw and the
    driver step that use its bits: 2·10⁵ random bits took ~1 ms rolled and ~0.3 ms
    unrolled, 2·10⁵ normals 1.45 and 0.58 ms (2 cores; docs/performance.md). The bits are the same
    (tests/test_samplers.py). If JAX's internals moved, JAX's own rule stays in place.
    Lowering happens when a jitted function is first compiled: wrap the `.lower()` call.
    """
    try:
        from jax._src.interpreters import mlir
        from jax._src.random import threefry2x32 as tf

        table = mlir._platform_specific_lowerings["cpu"]
        old = table[tf.threefry2x32_p]
        rule = tf._threefry2x32_lowering_rule
    except (ImportError, AttributeError, KeyError):
        yield False
        return
    mlir.register_lowering(tf.threefry2x32_p, rule, platform="cpu")
    try:
        yield True
    finally:
        table[tf.threefry2x32_p] = old
