"""Run directories written by an earlier main (ef7e4b3) still load and play exactly as they did.

tests/data/legacy_runs/ holds one tiny run of every kind of agent (DQN, DSQN, converted SNN, GA on
Mountain Car, ES and R-STDP on CartPole, tabular Taxi), written before the renovation (issue 12),
and expected.json what `spikeverse evaluate --episodes 3 --seed 7` reported for each then.
"""

import json
import shutil
from pathlib import Path

import pytest

from spikeverse.cli.app import main

DATA = Path(__file__).parent / "data" / "legacy_runs"
EXPECTED = json.loads((DATA / "expected.json").read_text())


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_legacy_run_still_evaluates(kind, tmp_path, monkeypatch, capsys, one_thread):
    shutil.copytree(DATA, tmp_path / "tests" / "data" / "legacy_runs")
    monkeypatch.chdir(tmp_path)  # the SNN's config names its source DQN relative to the repository root
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert main(["evaluate", f"tests/data/legacy_runs/{kind}", "--episodes", "3", "--seed", "7",
                 "--json", "--no-progress"]) == 0
    got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key, want in EXPECTED[kind].items():
        assert got[key] == (want if want is None else pytest.approx(want, rel=1e-9, abs=1e-12)), key
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before  # evaluating writes nothing into the run directory


@pytest.mark.parametrize("kind,options", [
    ("dqn", ["--hidden", "16"]),
    ("dsqn", ["--agent", "dsqn", "--hidden", "16", "--timesteps", "4"]),
])
def test_legacy_q_run_resumes(kind, options, tmp_path, capsys, one_thread):
    """An old DQN or DSQN run continues with the options it was trained with (its config.yaml and
    checkpoint hold the old names: ``tau``, ``lif_tau``, ...; the DSQN the kind "dqn"); what is
    written then has today's names."""
    import yaml

    from spikeverse.io.checkpoint import read_checkpoint_meta

    run = tmp_path / kind
    shutil.copytree(DATA / kind, run)
    assert main(["train", *options, "--steps", "400", "--eval-every", "0", "--out", str(run), "--json",
                 "--no-progress", "--device", "cpu"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["resumed_from"] == 300 and summary["steps"] == 400
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["polyak_tau"] == 1.0 and "tau" not in config and "lif_tau" not in config
    assert read_checkpoint_meta(run)["kind"] == kind
