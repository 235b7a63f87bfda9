"""The robustness study (issue 13): `spikeverse robustness` end to end on tiny saved agents."""

import json
import shutil
from pathlib import Path

import pytest

from spikeverse.cli.app import main
from spikeverse.study import robustness

DATA = Path(__file__).parent / "data" / "legacy_runs"
Q = ["--no-progress"]


@pytest.fixture()
def agents(tmp_path, monkeypatch, one_thread):
    """Copies of tiny saved agents (a DQN, its converted SNN, an ES SNN, a tabular Taxi agent)."""
    shutil.copytree(DATA, tmp_path / "tests" / "data" / "legacy_runs")
    monkeypatch.chdir(tmp_path)
    return {k: f"tests/data/legacy_runs/{k}" for k in ("dqn", "snn", "es", "tabular")}


def _timeless(res: dict, drop=("wall_s",)) -> dict:
    """results.json without what differs between equal runs: wall times (and ``drop``'s other keys)."""
    out = {k: v for k, v in res.items() if k not in drop}
    out["rows"] = [{k: v for k, v in r.items() if k not in drop} for r in res["rows"]]
    return out


def _run(args, capsys):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured


def test_strength_zero_is_the_clean_evaluation_and_every_agent_sees_the_same_draws(agents, capsys, tmp_path):
    a = agents
    code, _ = _run(["robustness", a["dqn"], a["snn"], a["dqn"], "--env", "CartPole-v1", "--perturb", "gaussian:0,1,3",
                    "--perturb", "occlusion-variable:2", "--episodes", "4", "--seed", "5", "--out", "r", *Q], capsys)
    assert code == 0
    res = json.loads((tmp_path / "r" / "results.json").read_text())
    rows = {(r["agent"], r["kind"], r["strength"]): r for r in res["rows"]}
    code, cap = _run(["evaluate", a["dqn"], "--episodes", "4", "--seed", "5", "--json", *Q], capsys)
    clean = json.loads(cap.out.strip().splitlines()[-1])
    assert rows[(0, "clean", 0.0)]["scores"] == clean["scores"]  # spikeverse evaluate on the same seeds
    assert rows[(0, "gaussian", 0.0)]["scores"] == clean["scores"]  # strength 0 leaves the frames as they are
    for key in [(k, s) for k, s in (("gaussian", 1.0), ("gaussian", 3.0), ("occlusion", 2.0))]:
        assert rows[(0, *key)]["scores"] == rows[(2, *key)]["scores"]  # the same agent twice: the same draws
    assert rows[(0, "gaussian", 3.0)]["agreement"] < 1.0  # strong noise changes some of the DQN's decisions
    assert rows[(1, "clean", 0.0)]["energy_uJ_per_decision"] > 0
    assert res["config"]["reference"] == ["ann", a["snn"]]  # the SNN's own ANN
    assert {w["a"] for w in res["welch"]} == {0, 1}
    text = (tmp_path / "r" / "report.md").read_text()
    assert "gaussian-additive" in text and "Welch" in text
    assert (tmp_path / "r" / "results.csv").read_text().splitlines()[0].startswith("agent,kind,mode,strength")


def test_a_rerun_keeps_finished_cells_and_redoes_lost_ones(agents, capsys, tmp_path, monkeypatch):
    args = ["robustness", agents["dqn"], agents["es"], "--env", "CartPole-v1", "--perturb", "saltpepper:0.1,0.3",
            "--episodes", "3", "--reference", agents["dqn"], "--out", "r", *Q]
    assert _run(args, capsys)[0] == 0
    first = json.loads((tmp_path / "r" / "results.json").read_text())
    cells = sorted((tmp_path / "r" / "cells").iterdir())
    assert len(cells) == 2 * 3
    cells[0].unlink()  # as if the run had been killed while playing this cell
    calls = []
    real = robustness._run_cell
    monkeypatch.setattr(robustness, "_run_cell", lambda payload, cell: calls.append(cell) or real(payload, cell))
    assert _run(args, capsys)[0] == 0
    assert len(calls) == 1  # only the lost cell is played again
    assert _timeless(json.loads((tmp_path / "r" / "results.json").read_text())) == _timeless(first)


def test_the_figures_are_drawn(agents, capsys, tmp_path):
    assert _run(["robustness", agents["dqn"], "--env", "CartPole-v1", "--perturb", "gaussian:0,1", "--episodes", "2",
                 "--out", "r", "--plot", *Q], capsys)[0] == 0
    assert {p.name for p in (tmp_path / "r" / "figures").iterdir()} == {"score_vs_strength.png",
                                                                         "agreement_vs_strength.png"}


@pytest.mark.parametrize("extra, words", [
    (["--perturb", "blur:1"], "unknown perturbation"),
    (["--perturb", "occlusion-bottom:1"], "vector observations take"),
    (["--perturb", "occlusion-variable:4"], "does not fit"),
    (["--perturb", "gaussian:-1"], "finite and >= 0"),
    (["--perturb", "gaussian:1", "--episodes", "1"], "--episodes"),
    (["--perturb", "gaussian:1", "--env", "MountainCar-v0"], "not MountainCar-v0"),
])
def test_bad_input_is_one_line_and_exit_2_before_any_play(agents, capsys, tmp_path, extra, words):
    args = ["robustness", agents["dqn"], "--out", "bad", "--episodes", "2", *Q]
    if "--env" not in extra:
        args += ["--env", "CartPole-v1"]
    code, cap = _run(args + extra, capsys)
    assert code == 2 and words in cap.err and len(cap.err.strip().splitlines()) == 1
    assert not (tmp_path / "bad" / "cells").exists()


def test_discrete_observations_and_another_study_in_out_are_refused(agents, capsys, tmp_path):
    code, cap = _run(["robustness", agents["tabular"], "--env", "Taxi-v3", "--perturb", "gaussian:1",
                      "--reference", agents["dqn"], "--out", "t", *Q], capsys)
    assert code == 2 and len(cap.err.strip().splitlines()) == 1
    assert _run(["robustness", agents["dqn"], "--env", "CartPole-v1", "--perturb", "gaussian:1", "--episodes", "2",
                 "--out", "r", *Q], capsys)[0] == 0
    code, cap = _run(["robustness", agents["dqn"], "--env", "CartPole-v1", "--perturb", "gaussian:2",
                      "--episodes", "2", "--out", "r", *Q], capsys)
    assert code == 2 and "another robustness study" in cap.err


def test_a_run_killed_mid_way_resumes_to_the_same_results(agents, capsys, tmp_path):
    """SIGKILL after the first finished cell; the rerun plays the rest; results equal an unbroken run's."""
    import os
    import signal
    import subprocess
    import sys
    import time

    args = ["robustness", agents["dqn"], agents["snn"], "--env", "CartPole-v1", "--perturb", "gaussian:0.5,1,2",
            "--episodes", "6", *Q]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "spikeverse.cli", *args, "--out", "killed"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cells = tmp_path / "killed" / "cells"
    deadline = time.time() + 60
    while time.time() < deadline and not (cells.is_dir() and any(cells.glob("*.json"))):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(list(cells.glob("*.json")))
    assert 1 <= done < 8  # killed mid-way
    assert all(json.loads(c.read_text())["scores"] for c in cells.glob("*.json"))  # no half-written cell
    assert _run([*args, "--out", "killed"], capsys)[0] == 0
    assert _run([*args, "--out", "whole"], capsys)[0] == 0
    strip = lambda d: _timeless(d, ("config", "wall_s"))  # noqa: E731 (the out paths differ)
    assert strip(json.loads((tmp_path / "killed" / "results.json").read_text())) == \
        strip(json.loads((tmp_path / "whole" / "results.json").read_text()))


def test_fgsm_transfer_and_white_box_cells_and_the_refusal_without_a_gradient(agents, capsys, tmp_path):
    code, _ = _run(["robustness", agents["dqn"], agents["snn"], agents["es"], "--env", "CartPole-v1",
                    "--perturb", "fgsm-transfer:0,2", "--episodes", "3", "--out", "f", *Q], capsys)
    assert code == 0  # transfer: the reference's gradient attacks even the gradient-free ES SNN
    rows = {(r["agent"], r["kind"], r["strength"]): r for r in json.loads((tmp_path / "f" / "results.json").read_text())["rows"]}
    assert rows[(0, "fgsm", 0.0)]["scores"] == rows[(0, "clean", 0.0)]["scores"]
    assert rows[(0, "fgsm", 2.0)]["agreement"] < 1.0
    code, _ = _run(["robustness", agents["dqn"], agents["snn"], "--env", "CartPole-v1", "--perturb",
                    "fgsm-white-box:0.5", "--episodes", "2", "--out", "w", *Q], capsys)
    assert code == 0
    code, cap = _run(["robustness", agents["dqn"], agents["es"], "--env", "CartPole-v1", "--perturb",
                      "fgsm-white-box:0.5", "--episodes", "2", "--out", "x", *Q], capsys)
    assert code == 2 and "needs the gradient" in cap.err and not (tmp_path / "x").exists()


def test_an_agent_at_another_T_plays_as_evaluate_does_and_num_envs_changes_nothing(agents, capsys, tmp_path):
    a = agents
    code, _ = _run(["robustness", a["snn"], f"{a['snn']}@3", "--env", "CartPole-v1", "--perturb", "gaussian:1",
                    "--episodes", "3", "--seed", "2", "--out", "t", *Q], capsys)
    assert code == 0
    res = json.loads((tmp_path / "t" / "results.json").read_text())
    rows = {(r["agent"], r["kind"]): r for r in res["rows"]}
    code, cap = _run(["evaluate", a["snn"], "--timesteps", "3", "--episodes", "3", "--seed", "2", "--json", *Q], capsys)
    at3 = json.loads(cap.out.strip().splitlines()[-1])
    assert rows[(1, "clean")]["scores"] == at3["scores"]  # DIR@3 is the SNN played at T = 3
    assert rows[(1, "clean")]["agreement"] == pytest.approx(at3["conversion_rate"])
    assert rows[(1, "clean")]["spikes_per_decision"] < rows[(0, "clean")]["spikes_per_decision"]  # fewer steps
    auc = {x["agent"]: x["relative_auc"] for x in res["relative_auc"]}
    assert auc[0] == pytest.approx((1 + rows[(0, "gaussian")]["relative"]) / 2)  # trapezoid from (0, 1)
    code, _ = _run(["robustness", a["snn"], f"{a['snn']}@3", "--env", "CartPole-v1", "--perturb", "gaussian:1",
                    "--episodes", "3", "--seed", "2", "--num-envs", "1", "--out", "one", *Q], capsys)
    assert code == 0
    assert _timeless(json.loads((tmp_path / "one" / "results.json").read_text()), ("config", "wall_s")) == \
        _timeless(res, ("config", "wall_s"))


@pytest.mark.parametrize("agent, words", [("dqn@4", "spiking agents only"), ("snn@0", "DIR@T"), ("snn@x", "DIR@T")])
def test_a_bad_agent_T_is_refused(agents, capsys, tmp_path, agent, words):
    name, _, t = agent.partition("@")
    code, cap = _run(["robustness", f"{agents[name]}@{t}", "--env", "CartPole-v1", "--perturb", "gaussian:1",
                      "--episodes", "2", "--out", "bad", *Q], capsys)
    assert code == 2 and words in cap.err and len(cap.err.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()
