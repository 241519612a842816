"""The package's layers: no import cycles, no module importing another's private names, each
sub-package importing only the layers below it, the public names resolving, and a force added
from user code is a sampling method end to end (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import activegen
from activegen import (
    ActiveOU,
    ActivegenError,
    GaussianMixture,
    export_protocol,
    force_naive,
    get_method,
    potential_naive,
    register_force,
    sample,
)
from activegen.samplers import unregister_method

SRC = Path(activegen.__file__).parent


def _modules():
    """{dotted module name: path} of every module of the package."""
    out = {}
    for p in SRC.rglob("*.py"):
        rel = p.relative_to(SRC.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _resolve(mod: str, is_pkg: bool, level: int, name: str | None) -> str:
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join(base + ([name] if name else []))


def _imports(mods):
    """(edges {module: {imported package modules}}, private imports [(module, name)])."""
    edges, private = {}, []
    for mod, path in mods.items():
        is_pkg = path.name == "__init__.py"
        tree = ast.parse(path.read_text(), str(path))
        deps = set()
        module_aliases = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                if node.level == 0:
                    if not (node.module or "").startswith("activegen"):
                        continue
                    target = node.module
                else:
                    target = _resolve(mod, is_pkg, node.level, node.module)
                for a in node.names:
                    sub = f"{target}.{a.name}"
                    if sub in mods:  # `from . import module`
                        deps.add(sub)
                        module_aliases.add(a.asname or a.name)
                    else:
                        deps.add(target)
                        if a.name.startswith("_") and not a.name.startswith("__"):
                            private.append((mod, f"{target}.{a.name}"))
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("activegen"):
                        deps.add(a.name)
        for node in ast.walk(tree):  # module._private attribute access
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in module_aliases and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                private.append((mod, f"{node.value.id}.{node.attr}"))
        deps.discard(mod)
        edges[mod] = {d for d in deps if d in mods}
    return edges, private


def _cycle(edges):
    """One import cycle as a list of modules, or None. A package's __init__ importing its
    own submodules is the normal direction; a submodule importing its package back is a
    cycle like any other."""
    state, stack = {}, []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for d in sorted(edges.get(m, ())):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if state.get(d) is None:
                c = visit(d)
                if c:
                    return c
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(edges):
        if state.get(m) is None:
            c = visit(m)
            if c:
                return c
    return None


def test_no_import_cycles_and_no_private_imports():
    mods = _modules()
    edges, private = _imports(mods)
    # the package root re-exports everything; nothing inside imports it back
    edges = {m: d - {"activegen"} for m, d in edges.items()}
    assert not [m for m, d in _imports(mods)[0].items() if "activegen" in d and m != "activegen"]
    assert _cycle(edges) is None, f"import cycle: {' -> '.join(_cycle(edges))}"
    assert not private, f"cross-module private imports: {private}"


#: The cross-cutting top-level modules: any module may import them; they import only each other.
BASE = {"errors", "files", "_xla", "_linalg", "_fastmath"}
#: Each sub-package and the sub-packages it may import besides BASE (docs/architecture.md,
#: "The layers"): physics at the bottom, cli at the top, nothing imports cli.
LAYERS = {
    "physics": set(),
    "cluster": set(),
    "samplers": {"physics", "cluster"},
    "learning": {"physics"},
    "lab": {"physics", "samplers"},
    "analysis": {"physics", "learning"},
    "figures": {"physics", "lab", "analysis"},
    "studies": {"physics", "cluster", "samplers", "learning", "lab", "analysis", "figures"},
    "cli": {"physics", "cluster", "samplers", "learning", "lab", "analysis", "figures",
            "studies"},
}


def _layer(mod: str) -> str:
    """activegen.physics.forces -> physics; activegen.errors -> errors; activegen -> ''."""
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_module_lies_in_a_layer():
    for mod in _modules():
        layer = _layer(mod)
        assert layer in LAYERS or layer in BASE or mod in ("activegen", "activegen.__main__"), (
            f"{mod}: a new sub-package or top-level module: add it to LAYERS or BASE here "
            "and to docs/architecture.md")


def test_each_layer_imports_only_the_layers_below():
    edges, _ = _imports(_modules())
    bad = []
    for mod, deps in edges.items():
        src = _layer(mod)
        if mod in ("activegen", "activegen.__main__"):
            continue
        for dep in deps:
            dst = _layer(dep)
            if dst == src or dst in BASE:
                if src in BASE and dst not in BASE:
                    bad.append((mod, dep))
                continue
            if src in BASE or dst not in LAYERS.get(src, set()):
                bad.append((mod, dep))
    assert not bad, f"imports against the layers: {bad}"
    # nothing imports the command line but the package's `python -m` entry
    assert not [m for m, d in edges.items() if any(_layer(x) == "cli" for x in d)
                and _layer(m) != "cli" and m != "activegen.__main__"]


def test_the_layer_check_finds_a_wrong_import():
    assert "samplers" not in LAYERS["physics"] and "cli" not in LAYERS["studies"]
    assert all(src not in deps for src, deps in LAYERS.items())


def test_the_public_names_resolve():
    """Every name of activegen.__all__, the lazily loaded ones, the sub-packages, the old
    module names kept as attributes (activegen.MOVED), the console script and `python -m`."""
    import importlib
    import subprocess
    import sys
    from importlib.metadata import entry_points

    for name in activegen.__all__:
        assert getattr(activegen, name) is not None, name
    for name in ("METHODS", "ACTIVE_METHODS", "LearnedScore", "load_model", "train",
                 "__version__"):
        assert getattr(activegen, name) is not None, name
    assert activegen.METHODS == ("passive", "ode", "exact", "fox", "ucn", "naive", "fox-sc",
                                 "refined", "fox-schedule")
    for name in LAYERS:
        assert getattr(activegen, name) is importlib.import_module(f"activegen.{name}")
    for old, new in activegen.MOVED.items():
        assert getattr(activegen, old) is importlib.import_module(f"activegen.{new}"), old
    assert activegen.digit_metrics.__name__ == "activegen.analysis.digit_metrics"
    assert callable(activegen.targets.default_target_1d)
    for bad in ("nope", "_private", "a.b", "learned", "experiments", "plots"):
        assert not hasattr(activegen, bad), bad
    script = [e for e in entry_points(group="console_scripts") if e.name == "activegen"]
    assert script and script[0].value == "activegen.cli:main"
    assert script[0].load() is activegen.cli.main
    for mod in ("activegen", "activegen.cli"):
        r = subprocess.run([sys.executable, "-m", mod, "--version"], capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0 and r.stdout.startswith("activegen "), (mod, r.stderr)


def _doc_references():
    """(page, dotted name) of every `activegen.X.Y` and every `SUBPACKAGE.X.Y` in backticks of
    README.md and docs/*.md, and (page, path) of every `DIR/NAME.py` of the package."""
    import re

    root = SRC.parents[1]
    pages = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    top = "|".join(sorted(set(LAYERS) | BASE))
    refs, paths = [], []
    for page in pages:
        text = page.read_text()
        for m in re.finditer(r"\bactivegen(?:\.[A-Za-z_]\w*)+", text):
            refs.append((page.name, m.group(0)))
        for m in re.finditer(rf"`((?:{top})(?:\.[A-Za-z_]\w*)+)[`(]", text):
            refs.append((page.name, "activegen." + m.group(1)))
        for m in re.finditer(rf"`((?:(?:{top})/)?\w+\.py)`", text):
            paths.append((page.name, m.group(1)))
    refs = [(p, r) for p, r in refs if not r.endswith(".py")]  # a file: in `paths`
    # a file named without its folder: one of the package's modules of that name
    names = {f.name for f in SRC.rglob("*.py")}
    paths = [(p, f) for p, f in paths if "/" in f or f in names or f.startswith("_")]
    return refs, paths


def test_the_module_paths_in_the_docs_resolve():
    import importlib

    refs, paths = _doc_references()
    assert len(refs) > 50 and paths
    missing = []
    for page, dotted in refs:
        parts = dotted.split(".")
        obj = None
        for k in range(len(parts), 0, -1):  # the longest importable module, then attributes
            try:
                obj = importlib.import_module(".".join(parts[:k]))
            except ImportError:
                continue
            try:
                for a in parts[k:]:
                    obj = getattr(obj, a)
            except AttributeError:
                obj = None
            break
        if obj is None:
            missing.append((page, dotted))
    missing += [(page, p) for page, p in paths if not (SRC / p).is_file()]
    assert not missing, f"module paths in the docs that do not resolve: {missing}"


def test_the_cycle_finder_finds_cycles():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_every_list_of_methods_comes_from_the_registry():
    from activegen.cli import build_parser
    from activegen.studies.validity_map import validity_methods

    names = activegen.METHODS
    assert names[:3] == ("passive", "ode", "exact") and "refined" in names
    sub = build_parser()._subparsers._group_actions[0].choices
    method_action = [a for a in sub["sample"]._actions if a.dest == "method"][0]
    assert tuple(method_action.choices) == names
    export = [a for a in sub["export-potential"]._actions if a.dest == "method"][0]
    assert set(export.choices) == {m.name for m in activegen.samplers.methods() if m.force}
    assert validity_methods()[0] == "exact" and "fox-schedule" in validity_methods()
    with pytest.raises(ActivegenError, match="takes no option 'tau_min'"):
        sample(GaussianMixture.from_stds([1.0], [[0.0]], [1.0]), "fox",
               ActiveOU(1.0, 0.0, 1.0, 0.1), 10, seed=0, tau_min=0.01)


def test_a_force_registered_from_user_code_samples_and_exports_like_naive():
    """Issue acceptance: F_0 registered under a new name samples exactly like `naive` and
    exports as a protocol."""
    target = GaussianMixture.from_stds([0.4, 0.6], [[-1.5], [1.0]], [0.5, 0.7])
    proc = ActiveOU(beta=1.0, d_thermal=0.05, d_active=1.0, tau=0.1)
    register_force("my-f0", force_naive, potential_naive, summary="F_0 again")
    try:
        assert "my-f0" in activegen.METHODS and get_method("my-f0").active
        a = sample(target, "my-f0", proc, 300, seed=5, t_final=1.0)
        b = sample(target, "naive", proc, 300, seed=5, t_final=1.0)
        np.testing.assert_array_equal(a.samples, b.samples)
        assert a.info["method"] == "my-f0" and a.info["tau_grad_force"] == b.info["tau_grad_force"]
        pa = export_protocol(target, "my-f0", proc, t_final=1.0, time_points=5)
        pb = export_protocol(target, "naive", proc, t_final=1.0, time_points=5)
        np.testing.assert_array_equal(pa.force, pb.force)
        np.testing.assert_array_equal(pa.potential, pb.potential)
        with pytest.raises(ActivegenError, match="is taken"):
            register_force("naive", force_naive, potential_naive)
    finally:
        unregister_method("my-f0")
    assert "my-f0" not in activegen.METHODS


def test_register_driver_makes_a_driver_available_by_name():
    from activegen.physics.drivers import DRIVERS, OUDriver, driver_and_process, register_driver

    class SlowOU(OUDriver):
        pass

    register_driver("slow-ou", SlowOU)
    try:
        drv, proc = driver_and_process("slow-ou", 1, tau=0.2, d_active=0.5)
        assert isinstance(drv, SlowOU) and (drv.tau, drv.d_active) == (0.2, 0.5)
        assert (proc.tau, proc.d_active) == (0.2, 0.5)
    finally:
        DRIVERS.pop("slow-ou")


def test_the_interfaces_describe_the_built_in_objects():
    from activegen import Driver, MixtureScore, OUDriver, Process, ScoreModel

    proc = ActiveOU(1.0, 0.0, 1.0, 0.1)
    assert isinstance(MixtureScore(GaussianMixture.from_stds([1.0], [[0.0]], [1.0]), proc),
                      ScoreModel)
    assert isinstance(proc, Process) and isinstance(OUDriver(0.1, 1.0), Driver)
