"""The import graph follows the module map at the end of README.md (issue 12).

Each package may import only the packages listed for it (and itself); the base modules (errors,
progress, runtime, device, policy) may be imported from anywhere. Outside ``cli/`` (whose commands
import lazily so that ``spikeverse --help`` stays fast) no spikeverse import sits inside a
function: such imports exist only to dodge a cycle.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "spikeverse"
README = Path(__file__).resolve().parents[1] / "README.md"
BASE = {"errors", "progress", "runtime", "device", "policy"}

# package -> the packages it may import (besides itself and BASE); the README's module map says the same
ALLOWED = {
    "io": {"snn"},
    "snn": set(),
    "envs": set(),
    "models": {"snn", "envs", "io"},
    "rl": {"models", "snn", "envs", "io"},
    "convert": {"rl", "models", "snn", "envs", "io"},
    "evo": {"models", "snn", "envs", "io"},
    "agents": {"convert", "rl", "evo", "models", "snn", "envs", "io"},
    "mnist": {"convert", "snn", "io"},
    "analysis": {"mnist", "agents", "convert", "rl", "evo", "models", "snn", "envs", "io"},
    "study": {"analysis", "mnist", "agents", "convert", "rl", "evo", "models", "snn", "envs", "io"},
    "cli": {"study", "analysis", "mnist", "agents", "convert", "rl", "evo", "models", "snn", "envs", "io"},
}
ALLOWED.update({b: BASE - {b} for b in BASE})


def _modules(root: Path = SRC):
    for f in sorted(root.rglob("*.py")):
        parts = f.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield f, parts


def _package(parts: tuple[str, ...]) -> str | None:
    return parts[1] if len(parts) > 1 else None


def _imports(f: Path, parts: tuple[str, ...]):
    """(target module, line, inside a function) for every spikeverse import of file f."""
    tree = ast.parse(f.read_text())
    inner = {id(n) for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
             for n in ast.walk(fn) if n is not fn}
    pkg = list(parts) if f.name == "__init__.py" else list(parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[: len(pkg) - (node.level - 1)]
                names = [".".join(base + ([node.module] if node.module else []))]
            else:
                names = [node.module or ""]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            if name == "spikeverse" or name.startswith("spikeverse."):
                yield name, node.lineno, id(node) in inner


def test_every_package_is_on_the_map():
    packages = {_package(p) for _, p in _modules()} - {None}
    assert packages <= set(ALLOWED), f"packages missing from the module map: {packages - set(ALLOWED)}"


def against_the_map(root: Path = SRC) -> list[str]:
    """Every import under ``root`` of a package its importer may not import."""
    wrong = []
    for f, parts in _modules(root):
        src = _package(parts)
        if src is None:
            continue
        for target, line, _ in _imports(f, parts):
            dst = _package(tuple(target.split(".")))
            if dst is not None and dst != src and dst not in BASE and dst not in ALLOWED.get(src, ()):
                wrong.append(f"{f.relative_to(root)}:{line} ({src}) imports {target} ({dst})")
    return wrong


def function_local(root: Path = SRC) -> list[str]:
    """Every spikeverse import inside a function, outside cli/."""
    return [f"{f.relative_to(root)}:{line} imports {target}" for f, parts in _modules(root) if _package(parts) != "cli"
            for target, line, inside in _imports(f, parts) if inside]


def test_imports_follow_the_module_map():
    wrong = against_the_map()
    assert not wrong, "imports against the module map:\n" + "\n".join(wrong)


def test_no_function_local_imports_outside_the_cli():
    local = function_local()
    assert not local, "function-local imports (a cycle being dodged?):\n" + "\n".join(local)


def test_readme_module_map_lists_every_package_with_its_imports():
    text = README.read_text()
    assert "## Module map" in text
    section = text.split("## Module map", 1)[1]
    for pkg, allowed in ALLOWED.items():
        if pkg in BASE:
            continue
        m = re.search(rf"^- `{pkg}/?`[^\n]*", section, re.M)
        assert m, f"README's module map has no line for {pkg}"
        line = m.group(0)
        said = set(re.findall(r"imports: ([^\n]*)", line)[0].replace(",", " ").split()) if "imports:" in line else set()
        said = {s.strip("`/.;") for s in said} - {"base", "nothing", "anything", "below"}
        if "anything" in line:
            continue
        assert said == allowed, f"README says {pkg} imports {sorted(said)}, the map {sorted(allowed)}"


def test_the_checks_catch_an_upward_and_a_hidden_import(tmp_path):
    """The checks themselves can fail: rl importing the CLI, and an import tucked into a function."""
    root = tmp_path / "spikeverse"
    (root / "rl").mkdir(parents=True)
    (root / "cli").mkdir()
    (root / "rl" / "__init__.py").write_text("")
    (root / "rl" / "bad.py").write_text("from spikeverse.cli.app import app\nfrom spikeverse.errors import E\n\n"
                                        "def f():\n    from spikeverse.snn import neurons\n")
    (root / "cli" / "ok.py").write_text("def g():\n    from spikeverse.rl import bad\n")
    assert against_the_map(root) == ["rl/bad.py:1 (rl) imports spikeverse.cli.app (cli)"]
    assert function_local(root) == ["rl/bad.py:5 imports spikeverse.snn"]
