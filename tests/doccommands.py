"""The commands and Python snippets of README.md and docs/*.md, as tests/test_docs.py runs them.

A *command* is a shell line in a code block (indented or fenced, backslash continuations
joined, `# comments` dropped, `a && b` split) or an inline code span `activegen … --out …`.
Each is one of

* ``activegen``: run in-process through `activegen.cli.main` at a small size (`scale`);
* ``synopsis``: a line with ``[…]``, ``{…}``, ``|`` or ``...`` (a usage line, not a command):
  every option it names must exist on that command, every ``{a,b}`` choice must be valid;
* ``script``: ``python benchmarks/X.py …``: its arguments are parsed in the default suite,
  the script runs in the slow one;
* ``snippet``: a fenced ``python`` block, or ``python - <<'EOF'`` … ``EOF``;
* ``setup`` / ``external``: the install and test commands (what CI itself runs) and the
  commands of other tools (``dask scheduler``, ``dask worker``), listed in EXTERNAL.

Anything else is an error: a new kind of command in the docs must be taught here.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

#: Other tools' commands that the docs show (run by the reader, not by us).
EXTERNAL = ("dask scheduler", "dask worker")
#: The set-up and test commands (the README's two commands run these; CI runs them).
SETUP = ("python3 -m venv", ".venv/bin/pip", "pip install", ".venv/bin/python -m pytest",
         "python -m pytest", "pytest")
#: Experiments: long studies; parsed in the default suite, run in the slow one.
LONG = ("experiment",)

#: Placeholders of concrete commands, filled from examples/ and the scratch directory.
PLACEHOLDERS = {
    "TARGET.json": "examples/four_modes_2d.json",
    "T.json": "examples/four_modes_2d.json",
    "t.json": "examples/four_modes_2d.json",
    "OUT.npz": "out.npz",
    "PROTOCOL.npz": "protocol.npz",
    "FIG.png": "fig.png",
    "LL.npz": "ll.npz",
}


@dataclass
class Command:
    page: str
    line: int
    text: str
    kind: str
    argv: list = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def _code_blocks(text: str):
    """(first line number, language or "", lines) of every fenced and indented code block."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        ln = lines[i]
        m = re.match(r"^(\s*)```\s*(\S*)", ln)
        if m:
            lang, start, body = m.group(2), i + 2, []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith("```"):
                body.append(lines[i])
                i += 1
            yield start, lang, body
            i += 1
            continue
        if ln.startswith("    ") and ln.strip() and (i == 0 or not lines[i - 1].strip()):
            start, body = i + 1, []
            while i < len(lines) and (lines[i].startswith("    ") or not lines[i].strip()):
                body.append(lines[i][4:])
                i += 1
            yield start, "", body
            continue
        i += 1


def _logical(body, start):
    """(line number, text, heredoc or None) of the lines of a block: continuations joined;
    `python - <<'EOF'` takes the lines up to EOF as its here-document."""
    out, cur, first, k = [], "", None, 0
    while k < len(body):
        ln = body[k]
        if first is None:
            first = start + k
        k += 1
        if ln.rstrip().endswith("\\"):
            cur += ln.rstrip()[:-1] + " "
            continue
        cur += ln
        here = None
        m = re.search(r"<<\s*'?(\w+)'?", cur)
        if m:
            here = []
            while k < len(body) and body[k].strip() != m.group(1):
                here.append(body[k])
                k += 1
            k += 1
        if cur.strip():
            out.append((first, cur.strip(), here))
        cur, first = "", None
    return out


def _is_synopsis(text: str) -> bool:
    return any(c in text for c in "[]{}|") or "..." in text or "…" in text


def _strip_env(tokens):
    while tokens and re.match(r"^[A-Z_][A-Z0-9_]*=", tokens[0]):
        tokens = tokens[1:]
    return tokens


def classify(page: str, line: int, text: str) -> Command:
    """One shell command of the docs (module doc)."""
    plain = text.split("  #")[0].strip()
    if any(plain.startswith(s) for s in SETUP):
        return Command(page, line, plain, "setup", plain.split())
    if _is_synopsis(text):
        head = re.sub(r"#.*$", "", text).strip()
        return Command(page, line, head, "synopsis", head.split())
    tokens = _strip_env(shlex.split(plain, comments=True))
    joined = " ".join(tokens)
    if not tokens:
        raise ValueError(f"{page}:{line}: empty command")
    if tokens[0] in ("activegen", ".venv/bin/activegen"):
        return Command(page, line, plain, "activegen", tokens[1:])
    if any(joined.startswith(s) for s in SETUP):
        return Command(page, line, plain, "setup", tokens)
    if any(joined.startswith(s) for s in EXTERNAL):
        return Command(page, line, plain, "external", tokens)
    if tokens[0] in ("python", "python3") and len(tokens) > 1 and tokens[1].endswith(".py"):
        return Command(page, line, plain, "script", tokens[1:])
    raise ValueError(f"{page}:{line}: a command the doc test does not know: {text!r} "
                     "(teach tests/doccommands.py, or write it as activegen/python)")


def page_commands(path: Path) -> list[Command]:
    """Every command and snippet of one page, in the order of the page."""
    page = path.relative_to(ROOT).as_posix()
    text = path.read_text()
    out = []
    for start, lang, body in _code_blocks(text):
        if lang == "python":
            out.append(Command(page, start, "\n".join(body), "snippet"))
            continue
        if lang not in ("", "bash", "sh", "shell", "console"):
            continue
        for line, ln, here in _logical(body, start):
            first = ln.split()[0] if ln.split() else ""
            if not (first in ("activegen", "python", "python3", "dask", "pytest")
                    or first.startswith(".venv/") or re.match(r"^[A-Z_]+=", first)):
                continue  # prose, a formula, printed output
            if here is not None:  # python - <<'EOF': a Python snippet
                out.append(Command(page, line, "\n".join(here), "snippet"))
                continue
            for part in ln.split("&&"):
                out.append(classify(page, line, part.strip()))
    for m in re.finditer(r"`(activegen [^`]*)`", text):
        span = m.group(1)
        if " --out " in span and not _is_synopsis(span):
            line = text.count("\n", 0, m.start()) + 1
            out.append(classify(page, line, span))
    return out


def all_commands() -> list[Command]:
    return [c for p in PAGES for c in page_commands(p)]


# -- a small size ------------------------------------------------------------------------
#: option -> the largest value the doc test runs (the documented value when smaller)
CAPS = {"--n": 256, "--subsample": 128, "--frames": 8, "--train-steps": 20}
TRAIN_STEPS = 20
#: command -> size options added where the command does not give them (its defaults are large)
INJECT = {
    ("demo",): ["--n", "256"],
    ("experiment", "tau-sweep"): ["--n", "256", "--t-final", "1"],
    ("experiment", "validity-map"): ["--n", "256", "--t-final", "1"],
    ("experiment", "results"): ["--n", "256", "--n-2d", "256", "--vm-n", "256"],
    ("experiment", "thermodynamics"): ["--n", "256"],
    ("experiment", "learned-gallery"): ["--n", "256", "--steps", "20"],
    ("experiment", "digits"): ["--n", "64", "--train-steps", "20", "--taus", "0.05",
                               "--methods", "passive,naive,fox"],
}


def scale(argv: list[str]) -> list[str]:
    """The command at a small size: fewer particles, frames and training steps (CAPS), the
    placeholders filled (PLACEHOLDERS); everything else as documented."""
    argv = [PLACEHOLDERS.get(a, a) for a in argv]
    out = list(argv)
    for i, a in enumerate(out[:-1]):
        if a in CAPS:
            try:
                v = float(out[i + 1])
            except ValueError:
                continue
            out[i + 1] = str(int(min(v, CAPS[a])))
    for path, extra in INJECT.items():
        if tuple(out[:len(path)]) == path:
            for k in range(0, len(extra), 2):
                if extra[k] not in out:
                    out += [extra[k], extra[k + 1]]
    if out[:2] == ["experiment", "digits"]:  # fox-sc needs >= 1380 digits per run
        k = out.index("--methods") + 1
        out[k] = ",".join(m for m in out[k].split(",") if m not in ("fox-sc", "refined"))
    if out and out[0] == "train":
        steps = 2 * TRAIN_STEPS if "--resume" in out else TRAIN_STEPS
        if "--steps" in out:
            out[out.index("--steps") + 1] = str(steps)
        else:
            out += ["--steps", str(steps)]
    if "--still-frame" in out and "--frames" in out:
        k = out.index("--still-frame") + 1
        out[k] = str(min(int(out[k]), int(out[out.index("--frames") + 1]) - 1))
    return out


def marker(cmd: Command):
    """(kind, reason) of a `<!-- doctest: skip|slow REASON -->` line just above the code
    block of cmd (blank lines and the block's own lines between), or None."""
    lines = (ROOT / cmd.page).read_text().splitlines()
    k = cmd.line - 2
    while k >= 0 and (not lines[k].strip() or lines[k].startswith("    ")
                      or lines[k].strip().startswith("```")):
        k -= 1
    m = re.match(r"^<!--\s*doctest:\s*(skip|slow)\s+(.*?)\s*-->$", lines[k].strip()) if k >= 0 else None
    return (m.group(1), m.group(2)) if m else None


@dataclass
class Output:
    """A printed-output block of a page: `<!-- doctest: output COMMAND -->` above it."""

    page: str
    line: int
    argv: list
    lines: list

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def outputs() -> list[Output]:
    """Every marked output block: the command runs at its documented size and must print
    these figures (tests/test_docs.py)."""
    found = []
    for path in PAGES:
        text = path.read_text().splitlines()
        for k, ln in enumerate(text):
            m = re.match(r"^<!--\s*doctest:\s*output\s+(.+?)\s*-->$", ln.strip())
            if not m:
                continue
            j = k + 1
            while j < len(text) and not text[j].strip():
                j += 1
            body = []
            while j < len(text) and (text[j].startswith("    ") or not text[j].strip()):
                if text[j].strip():
                    body.append(text[j][4:])
                j += 1
            argv = shlex.split(m.group(1))
            found.append(Output(path.relative_to(ROOT).as_posix(), k + 1, argv[1:], body))
    return found


def numbers(line: str) -> list[str]:
    """The decimal figures of a printed line, as printed."""
    return re.findall(r"(?<![\w.])-?\d+\.\d+", line)
