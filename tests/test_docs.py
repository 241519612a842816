"""The docs are tests (issue 26): every command and Python snippet of README.md and docs/*.md
runs here at a small size (tests/doccommands.py says how they are found and scaled).

* Concrete `activegen` commands run in-process through `cli.main`, in the order of their
  page, in one scratch directory per page (with `examples/` beside them): exit status 0, no
  traceback, and the file or folder named by `--out` exists.
* Usage lines (`[--opt X]`, `{a,b}`, `A | B`, `...`): every option they name is an option of
  that command, every choice a valid one.
* Long studies (`activegen experiment …`, `python benchmarks/…`): their arguments are parsed
  here; they run (small) with ACTIVEGEN_SLOW=1.
* Python snippets run as written, with their ensemble sizes (integer literals ≥ 1000) capped
  at 256; a block preceded by `<!-- doctest: skip REASON -->` is only compiled, one preceded
  by `<!-- doctest: slow REASON -->` runs with ACTIVEGEN_SLOW=1.
Inputs a command reads but no earlier command of its page wrote (a model, a protocol, a
samples file) are made small first (`_provide`).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

import doccommands as dc
from activegen.cli import build_parser, main

SLOW = bool(os.environ.get("ACTIVEGEN_SLOW"))
COMMANDS = dc.all_commands()


def _ids(kind):
    return [c for c in COMMANDS if c.kind == kind]


def _path(argv):
    """The (sub)command path of argv and the rest: ("plot", "samples"), [...]."""
    parser, path, rest = build_parser(), [], list(argv)
    while rest and not rest[0].startswith("-"):
        sub = _subparser(parser, rest[0])
        if sub is None:
            break
        parser = sub
        path.append(rest.pop(0))
    return parser, tuple(path), rest


def _subparser(parser, name):
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            return a.choices.get(name)
    return None


# -- the set: nothing in the docs is a command we cannot classify ----------------------
def test_every_page_is_read_and_every_command_classified():
    kinds = {c.kind for c in COMMANDS}
    assert {"activegen", "synopsis", "snippet", "script"} <= kinds
    pages = {c.page for c in COMMANDS}
    assert "README.md" in pages and "docs/protocol.md" in pages
    # the README's two commands: the demo and the test command
    readme = [c for c in COMMANDS if c.page == "README.md"]
    assert any(c.kind == "activegen" and c.argv == ["demo"] for c in readme)
    assert any(c.kind == "setup" and "pytest" in c.text for c in readme)


# -- usage lines ------------------------------------------------------------------------
@pytest.mark.parametrize("cmd", _ids("synopsis"), ids=lambda c: c.id)
def test_usage_line_names_real_options(cmd):
    words = cmd.argv[1:] if cmd.argv and cmd.argv[0].endswith("activegen") else cmd.argv
    if not words or cmd.argv[0] not in ("activegen", ".venv/bin/activegen"):
        pytest.skip("not an activegen usage line")
    parser, path, rest = _path(words)
    assert path, f"{cmd.id}: no command in {cmd.text!r}"
    options = {s: a for a in parser._actions for s in a.option_strings}
    text = " ".join(rest)
    for opt in re.findall(r"(?<![\w-])(--[a-z0-9][a-z0-9-]*)", text):
        assert opt in options, f"{cmd.id}: {' '.join(path)} has no option {opt}"
    for opt, choices in re.findall(r"(--[a-z0-9-]+)\s+\{([^}]*)\}", text):
        valid = options[opt].choices
        if valid is not None:
            bad = set(choices.split(",")) - set(map(str, valid))
            assert not bad, f"{cmd.id}: {opt} has no choice {sorted(bad)}"


# -- commands: parsed here, run below -------------------------------------------------
@pytest.mark.parametrize("cmd", _ids("activegen"), ids=lambda c: c.id)
def test_documented_command_parses(cmd):
    argv = dc.scale(cmd.argv)
    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:
        if exc.code != 0:
            pytest.fail(f"{cmd.id}: argparse refuses {' '.join(argv)}")


def _is_long(cmd):
    return bool(cmd.argv) and cmd.argv[0] in dc.LONG


_SCRATCH: dict = {}
_CLUSTER: dict = {}
_MODELS: dict = {}


def _scratch(page, tmp_path_factory):
    """One directory per page, with examples/ in it; commands of a page run in order."""
    if page not in _SCRATCH:
        d = tmp_path_factory.mktemp(re.sub(r"\W", "_", page))
        shutil.copytree(dc.ROOT / "examples", d / "examples")
        _SCRATCH[page] = d
    return _SCRATCH[page]


def _scheduler():
    """A local scheduler with one worker for `--scheduler tcp://HOST:8786` (started once)."""
    if "cluster" not in _CLUSTER:
        from distributed import LocalCluster

        _CLUSTER["cluster"] = LocalCluster(n_workers=1, threads_per_worker=1,
                                           dashboard_address=None, processes=True)
    return _CLUSTER["cluster"].scheduler_address


@pytest.fixture(scope="module", autouse=True)
def _close_cluster():
    yield
    if "cluster" in _CLUSTER:
        _CLUSTER.pop("cluster").close()


def _opt(argv, name):
    return argv[argv.index(name) + 1] if name in argv[:-1] else None


def _quiet(argv):
    return argv + (["--no-progress"] if "--no-progress" in _options(argv) else [])


def _options(argv):
    parser, _, _ = _path(argv)
    return {s for a in parser._actions for s in a.option_strings}


def _run(argv, capsys):
    rc = main(_quiet(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    assert rc == 0, f"activegen {' '.join(argv)} -> exit {rc}:\n{err}"
    return out


def _provide(argv, capsys):
    """Make, small, the inputs argv reads that do not exist yet (module doc)."""
    model = _opt(argv, "--model")
    if model and not Path(model).exists():
        data = "digits" if "digit" in model else "two-moons"
        if data not in _MODELS:  # trained once, copied where another page wants one
            _MODELS[data] = Path(_SCRATCH["models"]) / data
            _run(["train", "--data", data, "--tau", "0.05", "--out", str(_MODELS[data]),
                  "--steps", str(dc.TRAIN_STEPS)], capsys)
        shutil.copytree(_MODELS[data], model)
    proto = _opt(argv, "--protocol")
    if proto and not Path(proto).exists():
        _run(["export-potential", "--target", "examples/four_modes_2d.json", "--method", "fox",
              "--tau", "0.1", "--out", proto], capsys)
    src = _opt(argv, "--input")
    if src and not Path(src).exists():
        if src.endswith(".json"):
            _run(["experiment", "tau-sweep", "--taus", "0.2,0.1", "--methods", "fox",
                  "--n", "200", "--t-final", "1", "--out", str(Path(src).parent)], capsys)
        elif src.endswith("/"):
            _run(["sample", "--target", "examples/four_modes_2d.json", "--method", "fox",
                  "--tau", "0.1", "--n", "256", "--workers", "1", "--out", src], capsys)
        else:
            _run(["sample", "--target", "examples/four_modes_2d.json", "--method", "fox",
                  "--tau", "0.1", "--n", "256", "--out", src], capsys)


_DONE: dict = {}


def _run_documented(cmd, tmp_path_factory, monkeypatch, capsys):
    """Run cmd small in its page's scratch directory. The same command (same small argv)
    on another page ran already: its output is copied instead (the inputs are made by the
    same commands, so it would write the same)."""
    _scratch("models", tmp_path_factory)
    here = _scratch(cmd.page, tmp_path_factory)
    monkeypatch.chdir(here)
    argv = dc.scale(cmd.argv)
    argv = [_scheduler() if a == "tcp://HOST:8786" else a for a in argv]
    target = _opt(argv, "--out")
    key = tuple(argv)
    if key in _DONE and target is not None and not Path(target).exists():
        src = _DONE[key] / target
        (here / target).parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, here / target)
        for side in (src.with_suffix(".json"),):  # a protocol's sidecar
            if side != src and side.is_file():
                shutil.copy2(side, (here / target).with_suffix(".json"))
        return ""
    _provide(argv, capsys)
    out = _run(argv, capsys)
    if target is not None:
        assert Path(target).exists(), f"{cmd.id}: wrote no {target}"
        _DONE[key] = here
    return out


OUTPUTS = dc.outputs()
_AT_FULL_SIZE = [o.argv for o in OUTPUTS]


@pytest.mark.parametrize("cmd", [c for c in _ids("activegen")
                                 if not _is_long(c) and c.argv not in _AT_FULL_SIZE],
                         ids=lambda c: c.id)
def test_documented_command_runs(cmd, tmp_path_factory, monkeypatch, capsys):
    _run_documented(cmd, tmp_path_factory, monkeypatch, capsys)


@pytest.mark.parametrize("block", OUTPUTS, ids=lambda o: o.id)
def test_documented_output_is_what_the_command_prints(block, tmp_path, monkeypatch, capsys):
    """A figure quoted in the docs is what the command prints now, at its documented size
    (a drift fails here, not in a reader's hands): every line of the quoted block that
    starts like a printed line has the same figures (up to a "…" where it is shortened)."""
    assert any(c.argv == block.argv for c in _ids("activegen")), \
        f"{block.id}: the output of a command the docs do not give"
    shutil.copytree(dc.ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    printed = _run(block.argv, capsys).splitlines()
    for want in block.lines:
        head = want.split()[0]
        got = [p for p in printed if p.split() and p.split()[0] == head]
        assert got, f"{block.id}: nothing printed starts with {head!r}"
        short = want.split("…")[0]
        w, g = dc.numbers(short), dc.numbers(got[0])
        assert g[:len(w)] == w, f"{block.id}: the docs say\n  {want}\nthe command prints\n  {got[0]}"
    if block.argv == ["demo"]:  # the README: demo.png and report.json in activegen-demo/
        import json

        rep = json.loads(Path("activegen-demo/report.json").read_text())
        assert set(rep["methods"]) == {"fox", "refined", "exact", "naive"}
        for r in rep["methods"].values():
            assert r["metrics"]["w1"] > 0 and r["floor"]["w1"] > 0
            assert isinstance(r["warnings"], list)
        assert Path("activegen-demo/demo.png").stat().st_size > 10_000


@pytest.mark.slow
@pytest.mark.skipif(not SLOW, reason="set ACTIVEGEN_SLOW=1 (long studies, small)")
@pytest.mark.parametrize("cmd", [c for c in _ids("activegen") if _is_long(c)],
                         ids=lambda c: c.id)
def test_documented_study_runs(cmd, tmp_path_factory, monkeypatch, capsys):
    _run_documented(cmd, tmp_path_factory, monkeypatch, capsys)


# -- benchmark scripts --------------------------------------------------------------
class _Parsed(Exception):
    pass


def _load_script(path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"_doc_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("cmd", _ids("script"), ids=lambda c: c.id)
def test_documented_script_parses(cmd, monkeypatch):
    path = dc.ROOT / cmd.argv[0]
    assert path.is_file(), f"{cmd.id}: no {cmd.argv[0]}"
    mod = _load_script(path)
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        original(self, args, namespace)
        raise _Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    monkeypatch.setattr(sys, "argv", list(cmd.argv))
    with pytest.raises(_Parsed):
        try:
            mod.main()
        except SystemExit as exc:
            pytest.fail(f"{cmd.id}: {cmd.argv[0]} refuses its documented arguments ({exc})")


# -- Python snippets ----------------------------------------------------------------
def _small(code: str) -> str:
    """Integer literals ≥ 1000 (ensemble sizes: 10**6, 10_000) capped at 256."""
    code = re.sub(r"\b10\s*\*\*\s*\d+\b", "256", code)
    return re.sub(r"(?<![\w.])(\d[\d_]{3,})(?![\w.])",
                  lambda m: "256" if int(m.group(1).replace("_", "")) >= 1000 else m.group(1),
                  code)


@pytest.mark.parametrize("cmd", _ids("snippet"), ids=lambda c: c.id)
def test_documented_snippet_runs(cmd, tmp_path_factory, monkeypatch):
    code = cmd.text
    compile(code, cmd.id, "exec")
    mark = dc.marker(cmd)
    if mark and mark[0] == "skip":
        pytest.skip(f"compiled only: {mark[1]}")
    if mark and mark[0] == "slow" and not SLOW:
        pytest.skip(f"set ACTIVEGEN_SLOW=1 ({mark[1]})")
    monkeypatch.chdir(_scratch(cmd.page, tmp_path_factory))
    from activegen.samplers import method_names, unregister_method

    before = set(method_names())
    try:
        exec(compile(_small(code), cmd.id, "exec"), {"__name__": "__doc_snippet__"})
    finally:  # a snippet that registers a method (docs/architecture.md) leaves none behind
        for name in set(method_names()) - before:
            unregister_method(name)
