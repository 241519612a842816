"""Command-line interface: `activegen sample | evaluate | train | likelihood | demo |
experiment tau-sweep | validity-map | results | learned-gallery | thermodynamics | digits | plot |
animate | export-potential | lab check`.

One module per command (or command group) with its `add_parser(sub)` and its `cmd_*` run
function; `options` holds what they share. `main` parses, runs the command in a worker
thread (Ctrl-C is immediate) and turns an `ActivegenError` into one line and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from ..errors import ActivegenError
from . import animate, demo, evaluate, experiment, export, lab, likelihood, plot, sample, train
from . import options as opt

#: The commands in the order `activegen --help` lists them.
COMMANDS = (sample, likelihood, evaluate, train, demo, experiment, export, lab, plot, animate)


def build_parser() -> argparse.ArgumentParser:
    from importlib.metadata import PackageNotFoundError, version

    try:
        __version__ = version("activegen")
    except PackageNotFoundError:  # run from a source tree that is not installed
        __version__ = "unknown"

    ap = opt.Parser(
        prog="activegen",
        description="Generative diffusion driven by active matter: a persistent (active) "
        "particle in a time-dependent potential generates samples of a data distribution.",
        epilog="Run `activegen demo` for a first result (about half a minute), `activegen "
        "COMMAND --help` for a command's options. Without a command activegen prints this "
        "help and exits with status 0. Docs: README.md, docs/theory.md.",
    )
    ap.add_argument("--version", action="version", version=f"activegen {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    opt.fill_help(ap)
    return ap


def _compilation_cache():
    """Keep compiled sampler programs between runs (JAX's persistent cache): a repeated
    command skips most of its compile time. ACTIVEGEN_CACHE_DIR sets the folder (default
    ~/.cache/activegen/xla); ACTIVEGEN_CACHE_DIR=off switches it off."""
    import os

    path = os.environ.get("ACTIVEGEN_CACHE_DIR", str(Path.home() / ".cache" / "activegen" / "xla"))
    if path.lower() in ("off", "0", "none", ""):
        return
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # read-only home: run without the cache
    import jax

    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        parser = build_parser()
        if not argv:  # a bare `activegen`: the help, exit status 0
            parser.print_help()
            return 0
        args = parser.parse_args(argv)
        args._argv = argv  # `_given`: which options the command line gave
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    return _interruptible(lambda: _run_command(args))


INTERRUPTED = "activegen: interrupted (nothing written by the unfinished step)"


def _run_command(args) -> int:
    try:
        _compilation_cache()
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = lambda msg, cat, *a, **k: print(
                f"activegen: warning: {msg}", file=sys.stderr
            )
            return args.func(args)
    except ActivegenError as exc:
        print(f"activegen: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130


def _interruptible(run) -> int:
    """Run the command in a worker thread while the main thread waits, so that Ctrl-C takes
    effect within a fraction of a second even inside one long compiled call (an ODE solve,
    a protocol export, a training step): the main thread removes the temporary files of
    unfinished writes (outputs are written atomically, `files.atomic_path`), prints one line
    and exits with status 130 without waiting for the computation. Called from another
    thread (e.g. a test runner's), runs `run` directly."""
    import os
    import threading

    if threading.current_thread() is not threading.main_thread():
        return run()
    out: dict = {}

    def work():
        try:
            out["rc"] = run()
        except BaseException as exc:  # re-raised in the main thread
            out["exc"] = exc

    worker = threading.Thread(target=work, name="activegen-command", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.1)
    except KeyboardInterrupt:
        from .. import files

        files.discard_pending()
        print(INTERRUPTED, file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    if "exc" in out:
        raise out["exc"]
    return out["rc"]
