"""Every benchmarks/results/*.md is written entirely by its script from the JSON beside it.

Each benchmark script names its markdown reports in ``REPORTS`` (results name -> render
function; a script without one renders results/SCRIPT.md by its ``render`` or ``markdown``
function); the committed markdown must equal ``render(json)`` exactly, so no figure in a
results markdown can be edited by hand or outlive its JSON. Fast: imports the scripts, trains
nothing.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
RESULTS = BENCH / "results"
# peer_*.py run in a throwaway venv with another library (and spikeverse or not); they own no report
SCRIPTS = sorted(p for p in BENCH.glob("*.py") if not p.name.startswith(("_", "peer_")))


def _load(path: Path):
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{path.stem}", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture(scope="module")
def reports() -> dict:
    out = {}
    for script in SCRIPTS:
        mod = _load(script)
        fallback = getattr(mod, "render", None) or getattr(mod, "markdown", None)
        named = getattr(mod, "REPORTS", None) or ({script.stem: fallback} if fallback else {})
        for name, render in named.items():
            assert name not in out, f"results/{name}.md claimed by two scripts"
            out[name] = (script.name, render)
    return out


def test_every_script_has_reports(reports):
    owners = {s for s, _ in reports.values()}
    assert {p.name for p in SCRIPTS} <= owners


@pytest.mark.parametrize("md", sorted(p.name for p in RESULTS.glob("*.md")))
def test_markdown_is_its_render(md, reports):
    name = md[: -len(".md")]
    assert name in reports, f"no benchmark script renders results/{md} (REPORTS)"
    data = RESULTS / f"{name}.json"
    assert data.exists(), f"results/{md} has no JSON beside it"
    script, render = reports[name]
    expected = render(json.loads(data.read_text()))
    assert (RESULTS / md).read_text() == expected, (
        f"results/{md} differs from its render: rerun `python benchmarks/{script} --report` (or fix the script)")


def test_every_json_has_its_markdown(reports):
    for data in RESULTS.glob("*.json"):
        assert (RESULTS / f"{data.stem}.md").exists(), f"results/{data.name} has no markdown"
