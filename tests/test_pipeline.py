"""`spikeverse run`: train, evaluate, report."""

import json

import pytest

from spikeverse.cli.app import main
from spikeverse.convert import load_ann, load_snn
from spikeverse.rl.evaluation import evaluate
from spikeverse.snn.cost import CostMonitor


def test_run_writes_a_report(tmp_path, capsys):
    out = tmp_path / "cp"
    rc = main(["run", "--out", str(out), "--steps", "1500", "--episodes", "3", "--no-progress", "--json",
               "--frames", "500", "--timesteps", "16", "--finetune-steps", "12", "--levels", "8",
               "--finetune-frames", "1000"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert res["env"] == "CartPole-v1" and res["dqn"]["n"] == 3
    report = out / "report"
    md = (report / "report.md").read_text()
    assert "| DQN | 3 |" in md and "| SNN tan (T=16, robust) | 3 |" in md and "not applicable" in md  # no no-op
    assert "| SNN fast (T=16, membrane) | 3 |" in md
    assert set(res["snn"]) == {"tan", "fast"} and res["snn"]["fast"]["qcfs"]["levels"] == 8
    fast = res["snn"]["fast"]["qcfs"]
    assert fast["splits"] == {"train": 800, "validation": 100, "test": 100} and 0 < fast["test_agreement"] <= 1
    for s in res["snn"].values():
        assert s["timesteps"] == 16
        assert [w["timesteps"] for w in s["sweep"]] == [8, 16, 32, 64, 128]
        # the saved SNN, played on the same protocol with the saved ANN in the shadow, gives the
        # reported scores, conversion rate (seed 001 eq. 18) and cost (0.9 pJ/AC, 4.6 pJ/MAC)
        snn, _ = load_snn(s["snn_dir"])
        monitor = CostMonitor(snn)
        ref = evaluate(monitor, "CartPole-v1", episodes=3, seed=0, shadow=load_ann(s["snn_dir"]))
        d = monitor.diagnostics()
        assert ref.scores == s["scores"] and ref.conversion_rate == s["conversion_rate"] is not None
        assert d["synops_per_decision"] == pytest.approx(s["synops_per_decision"], rel=1e-12)
        assert s["energy_uJ_per_decision"] == pytest.approx(
            (0.9 * d["synops_per_decision"] + 4.6 * d["macs_per_decision"]) * 1e-6, rel=1e-9)
        assert d["macs_per_decision"] == 4 * snn.layers[0].out_features  # the analog input layer, once
    assert "pJ" in res["energy_convention"]
    for fig in ("learning_curve.png", "reward_distribution.png", "score_cr_vs_T_tan.png", "score_cr_vs_T_fast.png"):
        assert (report / "figures" / fig).stat().st_size > 1000
    assert json.loads((report / "results.json").read_text())["train_steps"] == 1500


def test_run_rejects_an_unknown_method(tmp_path, capsys):
    rc = main(["run", "--out", str(tmp_path / "x"), "--methods", "tan,burst", "--steps", "10"])
    assert rc == 2 and "burst" in capsys.readouterr().err


def test_run_on_minatar(tmp_path, capsys):
    out = tmp_path / "mb"
    rc = main(["run", "--env", "MinAtar/Breakout", "--out", str(out), "--steps", "1200", "--episodes", "2",
               "--no-progress", "--json", "--frames", "300", "--methods", "fast", "--finetune-steps", "2",
               "--finetune-frames", "300", "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    res = json.loads(capsys.readouterr().out)
    assert res["env"] == "MinAtar/Breakout" and res["train_steps"] == 1200 and list(res["snn"]) == ["fast"]
    assert res["snn"]["fast"]["timesteps"] == 32 and res["protocol"]["noops_applied"]
    assert (out / "report" / "figures" / "score_cr_vs_T_fast.png").exists()
