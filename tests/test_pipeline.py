"""`spikeverse run`: train, evaluate, report."""

import json

from spikeverse.cli.app import main


def test_run_writes_a_report(tmp_path, capsys):
    out = tmp_path / "cp"
    rc = main(["run", "--out", str(out), "--steps", "1500", "--episodes", "3", "--no-progress", "--json",
               "--frames", "500", "--timesteps", "16"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert res["env"] == "CartPole-v1" and res["dqn"]["n"] == 3
    report = out / "report"
    md = (report / "report.md").read_text()
    assert "| DQN | 3 |" in md and "| SNN | 3 |" in md and "not applicable" in md  # CartPole: no no-op
    assert 0.0 <= res["snn"]["conversion_rate"] <= 1.0 and res["snn"]["timesteps"] == 16
    assert [w["timesteps"] for w in res["sweep"]] == [8, 16, 32, 64, 128]
    assert res["snn"]["energy_uJ_per_decision"] > 0 and "pJ" in res["energy_convention"]
    for fig in ("learning_curve.png", "reward_distribution.png", "score_cr_vs_T.png"):
        assert (report / "figures" / fig).stat().st_size > 1000
    assert json.loads((report / "results.json").read_text())["train_steps"] == 1500
