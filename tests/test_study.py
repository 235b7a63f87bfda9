"""The multi-game study (issue 15): a grid of ordinary run directories, resumable cell by cell, the
same results on local processes and Ray, failed cells reported while the rest goes on, the report's
tables and aggregates, and its strict spec."""

import json
import shutil

import numpy as np
import pytest

from spikeverse.analysis.aggregate import iqm, iqm_interval, normalize, probability_of_improvement
from spikeverse.cli.app import main
from spikeverse.study import cells as cells_mod
from spikeverse.study import runner as runner_mod
from spikeverse.study.runner import _needs, plan, run_study
from spikeverse.study.spec import load_spec

pytestmark = pytest.mark.usefixtures("one_thread")

CARTPOLE = dict(envs=["CartPole-v1"], seeds=[0, 1], frames=1200, episodes=3,
                agents=["dqn", {"tan": {"timesteps": 16, "percentiles": [99.9], "collection_frames": 300}},
                        {"fast": {"collection_frames": 300, "finetune_steps": 100, "finetune_frames": 600}},
                        {"dsqn": {"timesteps": 4}}])


def _spec(**over):
    return load_spec(**{**CARTPOLE, **over})


def _strip(r):
    """results.json without what depends on the machine's clock."""
    return json.loads(json.dumps(r).replace('"wall_s"', '"_"'), object_hook=lambda d: {k: v for k, v in d.items() if k != "_"})


@pytest.fixture(scope="module")
def cartpole_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "cp"
    return out, run_study(_spec(), out, progress=False)


def test_every_cell_is_an_ordinary_run_directory_and_the_report_has_the_tables(cartpole_study, capsys):
    out, r = cartpole_study
    g = r["games"]["CartPole-v1"]
    assert set(g["agents"]) == {"dqn", "tan-p99.9", "fast", "dsqn"} and not r["errors"]
    for name, per in g["agents"].items():
        assert set(per) == {"0", "1"} and all(row["n"] == 3 for row in per.values())
        rc = main(["evaluate", str(out / "runs" / "CartPole-v1" / "seed0" / name), "--episodes", "3", "--json",
                   "--device", "cpu"])
        res = json.loads(capsys.readouterr().out)
        assert rc == 0 and res["mean"] == pytest.approx(per["0"]["mean"])  # the same protocol and episodes
    tan = g["agents"]["tan-p99.9"]["0"]
    assert tan["timesteps"] == 16 and 0 <= tan["normal_readout_conversion_rate"] <= 1 and tan["conversion_rate"] is not None
    assert [p["timesteps"] for p in tan["agreement_vs_timesteps"]] == [4, 8, 16, 32, 64, 128, 256, 500]
    fast = g["agents"]["fast"]["0"]
    assert fast["timesteps"] == fast["timesteps_auto"]["timesteps"]  # auto T by default
    assert g["dsqn_vs"]["dqn"]["0"]["mean_dsqn"] == pytest.approx(g["agents"]["dsqn"]["0"]["mean"])
    assert set(g["curves"]) == {"dqn", "dsqn"} and g["random"] is not None
    assert set(r["aggregate"]["iqm"]) == set(g["agents"]) and r["aggregate"]["iqm"]["dqn"]["iqm"] == pytest.approx(1.0)
    md = (out / "report.md").read_text()
    for text in ("Table 1", "Table 2", "Cost per decision", "Aggregate over games", "held-out frames"):
        assert text in md
    assert (out / "figures" / "learning_curves_CartPole-v1.png").is_file() and (out / "figures" / "aggregate_iqm.png").is_file()
    assert len((out / "results.csv").read_text().splitlines()) == 1 + 4 * 2


def test_a_rerun_does_only_what_is_missing_and_gives_the_same_report(cartpole_study, tmp_path, monkeypatch):
    out, first = cartpole_study
    copy = tmp_path / "cp"
    shutil.copytree(out, copy)
    missing = "evaluate--CartPole-v1--seed1--fast"
    (copy / "cells" / f"{missing}.json").unlink()
    ran = []
    real = runner_mod.run_cell
    monkeypatch.setattr(runner_mod, "run_cell", lambda payload, cell: ran.append(cell.name) or real(payload, cell))
    again = run_study(_spec(), copy, progress=False)
    assert ran == [missing]
    a, b = _strip(first), _strip(again)
    assert a["games"]["CartPole-v1"]["agents"] == b["games"]["CartPole-v1"]["agents"]


def test_report_only_gives_the_tables_of_the_finished_cells_and_runs_nothing(cartpole_study, tmp_path, monkeypatch, capsys):
    out, first = cartpole_study
    part = tmp_path / "cp"
    shutil.copytree(out, part)
    for name in ("evaluate--CartPole-v1--seed1--fast", "evaluate--CartPole-v1--seed0--dsqn"):
        (part / "cells" / f"{name}.json").unlink()
    (part / "report.md").unlink()
    monkeypatch.setattr(runner_mod, "run_cell", lambda payload, cell: pytest.fail(f"ran {cell.name}"))
    r = runner_mod.report_study(_spec(), part)
    agents = r["games"]["CartPole-v1"]["agents"]
    assert set(agents["fast"]) == {"0"} and set(agents["dsqn"]) == {"1"}  # only what has finished
    assert agents["dqn"] == first["games"]["CartPole-v1"]["agents"]["dqn"]
    assert r["cells"]["finished"] == r["cells"]["planned"] - 2 and not r["errors"]
    assert "In progress" in (part / "report.md").read_text() and "In progress" not in (out / "report.md").read_text()
    args = ["study", "--envs", "CartPole-v1", "--seeds", "0", "--agents", "dqn", "--report-only", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "none")]) == 2 and "no study in" in capsys.readouterr().err
    assert main([*args, "--out", str(part)]) == 2 and "holds another study" in capsys.readouterr().err
    assert main([*args, "--out", str(part), "--workers", "2"]) == 2 and "runs nothing" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()


def test_a_failed_cell_is_reported_the_rest_goes_on_and_a_rerun_retries_it(tmp_path, monkeypatch):
    real = cells_mod._PHASE_FN["train"]

    def broken(payload, cell):
        if cell.agent == "dsqn":
            raise RuntimeError("out of memory")
        return real(payload, cell)

    monkeypatch.setitem(cells_mod._PHASE_FN, "train", broken)
    spec = _spec(seeds=[0], agents=["dqn", {"dsqn": {"timesteps": 4}}])
    r = run_study(spec, tmp_path / "s", progress=False)
    errors = {e["cell"]: e["error"] for e in r["errors"]}
    assert errors["train--CartPole-v1--seed0--dsqn"] == "RuntimeError: out of memory"
    assert "needs train--CartPole-v1--seed0--dsqn" in errors["evaluate--CartPole-v1--seed0--dsqn"]
    assert r["games"]["CartPole-v1"]["agents"]["dqn"]["0"]["n"] == 3  # the rest of the grid went on
    assert "Cells that failed" in (tmp_path / "s" / "report.md").read_text()
    monkeypatch.setitem(cells_mod._PHASE_FN, "train", real)
    r = run_study(spec, tmp_path / "s", progress=False)
    assert not r["errors"] and r["games"]["CartPole-v1"]["agents"]["dsqn"]["0"]["n"] == 3


def test_minatar_and_cartpole_in_one_grid_with_two_local_workers(tmp_path):
    spec = load_spec(envs=["CartPole-v1", "MinAtar/Breakout"], seeds=[0], frames=600, episodes=2,
                     agents=["dqn", {"tan": {"timesteps": 8, "percentiles": [99.9], "collection_frames": 200}}])
    r = run_study(spec, tmp_path / "s", workers=2, progress=False)
    assert not r["errors"] and set(r["games"]) == {"CartPole-v1", "MinAtar/Breakout"}
    assert r["games"]["MinAtar/Breakout"]["agents"]["tan-p99.9"]["0"]["timesteps"] == 8
    assert "## MinAtar/Breakout" in (tmp_path / "s" / "report.md").read_text()


def test_ray_and_local_executors_give_the_same_results(tmp_path):
    pytest.importorskip("ray")
    spec = _spec(seeds=[0], agents=["dqn", {"tan": {"timesteps": 8, "percentiles": [99.9], "collection_frames": 200}}])
    local = run_study(spec, tmp_path / "local", workers=2, progress=False)
    ray = run_study(spec, tmp_path / "ray", executor="ray", workers=2, progress=False)
    strip_paths = lambda r: json.loads(json.dumps(_strip(r)).replace(str(tmp_path / "ray"), str(tmp_path / "local")))  # noqa: E731
    assert strip_paths(local)["games"] == strip_paths(ray)["games"]


def test_the_cli_refuses_a_folder_with_a_study_without_resume_and_another_study_with_it(tmp_path, capsys):
    base = ["study", "--envs", "CartPole-v1", "--seeds", "0", "--agents", "dqn", "--frames", "600", "--episodes", "2",
            "--out", str(tmp_path / "s"), "--no-progress"]
    assert main(base) == 0
    capsys.readouterr()
    assert main(base) == 2 and "--resume" in capsys.readouterr().err
    assert main([*base, "--resume"]) == 0
    capsys.readouterr()
    other = [*base[:4], "0,1", *base[5:], "--resume"]
    assert main(other) == 2 and "holds another study" in capsys.readouterr().err


@pytest.mark.parametrize("spec, message", [
    (dict(agents=["dqn", "ppo"]), "unknown agent 'ppo'"),
    (dict(agents=[{"tan": {"T": 8}}]), "agent tan does not take T"),
    (dict(agents=[{"tan": {"timesteps": "auto"}}]), "agent tan: timesteps must be an integer >= 1, got 'auto'"),
    (dict(agents=[{"fast": {"target": 2}}]), "agent fast: target must be in (0, 1]"),
    (dict(envs=["Nope-v0"]), "unknown environment"),
    (dict(seeds=[0, 0]), "seeds lists a value twice"),
    (dict(episodes=1), "episodes must be an integer >= 2"),
    (dict(frames={"Pong": 10}), "frames names env(s) not in the study"),
    (dict(train_hours={"CartPole-v1": 0}), "train_hours of CartPole-v1 must be a number > 0"),
    (dict(robustness=["gaussian:abc"]), "strengths are a list a,b,c or a range"),
])
def test_a_bad_spec_is_one_line_and_exit_2_before_any_work(tmp_path, capsys, spec, message):
    import yaml

    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({**CARTPOLE, **spec}))
    rc = main(["study", str(path), "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()


def test_a_study_file_with_an_unknown_key_is_refused(tmp_path, capsys):
    path = tmp_path / "study.yaml"
    path.write_text("envs: [CartPole-v1]\nseeds: [0]\nagents: [dqn]\ngames: 5\n")
    assert main(["study", str(path), "--out", str(tmp_path / "s")]) == 2
    assert "unknown key(s) games" in capsys.readouterr().err


def test_the_plan_trains_the_dqn_for_every_conversion_and_goes_agent_by_agent():
    cells = plan(load_spec(envs=["CartPole-v1"], seeds=[3], agents=["fast"]))
    assert [(c.phase, c.agent) for c in cells] == [("train", "dqn"), ("evaluate", "dqn"), ("evaluate", "random"),
                                                   ("convert", "fast"), ("evaluate", "fast")]
    # a slow agent listed last waits for nothing else; every cell comes after the cells it needs
    spec = load_spec(envs=["CartPole-v1", "MinAtar/Breakout"], seeds=[0, 1], agents=["dqn", "tan", "dsqn"],
                     robustness=["gaussian:0,0.1"])
    cells = plan(spec)
    names = [c.agent for c in cells if c.phase != "robustness"]
    assert names.index("dsqn") > max(i for i, n in enumerate(names) if n != "dsqn")
    assert cells[-1].phase == "robustness"
    for i, c in enumerate(cells):
        assert all(cells.index(n) < i for n in _needs(c, spec.agent_names()))


# ----------------------------------------------------------------------------- aggregates


class _Clock:
    """A fake executor of 2 workers: a cell takes ``cost[phase]`` ticks; wait_any returns the
    submission that ends first (ties: the earliest). Records when each cell started."""

    workers = 2

    def __init__(self, cost):
        self.cost, self.now, self.started, self.results = cost, 0, {}, {}

    def submit(self, fn, cell):
        self.started[cell.name] = self.now
        handle = (self.now + self.cost[cell.phase], len(self.started))  # (end, submission order)
        self.results[handle] = fn(cell)
        return handle

    def wait_any(self, handles):
        h = min(handles)
        self.now = h[0]
        return h

    def result(self, handle):
        return self.results[handle]


def test_the_scheduler_keeps_every_worker_busy_and_runs_a_cell_once_its_needs_finish():
    spec = _spec(seeds=[0, 1, 2], agents=["dqn", {"tan": {"timesteps": 8, "percentiles": [99.9]}}])
    cells = plan(spec)
    ok = lambda c: {"error": "boom"} if c.name == "train--CartPole-v1--seed2--dqn" else {}  # noqa: E731
    ex = _Clock({"train": 10, "convert": 1, "evaluate": 1})
    done = set()
    out = dict(runner_mod.schedule(ex, ok, cells, done, lambda c: _needs(c, spec.agent_names())))
    assert set(out) == set(cells)  # every cell has its result or error
    started = ex.started
    # seed 0's and 1's DQNs train side by side; seed 2's starts when the first finishes, and the other
    # worker meanwhile takes what the finished DQNs made ready instead of idling until seed 2's is done
    assert started["train--CartPole-v1--seed0--dqn"] == started["train--CartPole-v1--seed1--dqn"] == 0
    assert started["train--CartPole-v1--seed2--dqn"] == started["evaluate--CartPole-v1--seed0--dqn"] == 10
    assert started["convert--CartPole-v1--seed0--tan-p99.9"] < 20 and started["evaluate--CartPole-v1--seed1--tan-p99.9"] < 20
    for c in cells:
        for n in _needs(c, spec.agent_names()):
            if c.name in started:
                assert n.name in started and started[n.name] + ex.cost[n.phase] <= started[c.name]
    lost = {c.name: r["error"] for c, r in out.items() if "did not finish" in r.get("error", "")}
    assert lost == {"evaluate--CartPole-v1--seed2--dqn": "needs train--CartPole-v1--seed2--dqn, which did not finish",
                    "convert--CartPole-v1--seed2--tan-p99.9": "needs train--CartPole-v1--seed2--dqn, which did not finish",
                    "evaluate--CartPole-v1--seed2--tan-p99.9":
                        "needs convert--CartPole-v1--seed2--tan-p99.9, which did not finish"}
    assert not any(name in started for name in lost)


def test_iqm_is_the_mean_of_the_middle_half():
    x = np.array([[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 100.0]])  # 8 values: the middle 4 are 2, 3, 4, 5
    assert iqm(x) == pytest.approx(3.5)
    out = iqm_interval(x, resamples=500)
    assert out["ci95_low"] <= out["iqm"] <= out["ci95_high"]
    assert iqm_interval(x[:1], resamples=500)["ci95_low"] is None  # one run per game: no interval


def test_the_bootstrap_is_stratified_by_game():
    # game 0 is constant across runs, game 1 varies: resampling within games leaves game 0's
    # values alone, so every resample has half its values at exactly 10
    x = np.array([[10.0, 0.0], [10.0, 1.0], [10.0, 2.0], [10.0, 3.0]])
    out = iqm_interval(x, resamples=2000)
    # the IQM of (10 x 4, four draws from 0..3) lies between the IQM of (10,10,10,10,0,0,0,0) and (10,..,3,3,3,3)
    assert iqm([10] * 4 + [0] * 4) <= out["ci95_low"] <= out["ci95_high"] <= iqm([10] * 4 + [3] * 4)


def test_probability_of_improvement_counts_wins_and_half_ties_per_game():
    x = np.array([[2.0, 1.0], [3.0, 1.0]])
    y = np.array([[1.0, 1.0], [4.0, 1.0]])
    # game 0: pairs (2,1) (2,4) (3,1) (3,4): 2 wins of 4; game 1: all ties: 0.5
    assert probability_of_improvement(x, y, resamples=200)["probability"] == pytest.approx(0.5)
    assert probability_of_improvement(x + [[10.0, 0.0]], y, resamples=200)["probability"] == pytest.approx(0.75)


def test_normalize_maps_random_to_zero_and_the_reference_to_one():
    n = normalize(np.array([[1.0, 5.0], [3.0, 9.0]]), random=[1.0, 1.0], reference=[3.0, 9.0])
    assert np.allclose(n, [[0.0, 0.5], [1.0, 1.0]])
    assert np.isnan(normalize(np.array([[1.0]]), random=[2.0], reference=[2.0])).all()


def test_the_robustness_phase_gives_each_agent_its_areas(tmp_path):
    spec = _spec(seeds=[0], episodes=2, robustness=["gaussian:0.5,1"],
                 agents=["dqn", {"tan": {"timesteps": 8, "percentiles": [99.9], "collection_frames": 200}}])
    r = run_study(spec, tmp_path / "s", progress=False)
    areas = r["games"]["CartPole-v1"]["robustness"]["0"]
    assert set(areas) == {"dqn", "tan-p99.9"} and all(set(a) == {"gaussian-additive"} for a in areas.values())
    own = json.loads((tmp_path / "s" / "robustness" / "CartPole-v1" / "seed0" / "results.json").read_text())
    assert [a["relative_auc"] for a in own["relative_auc"]] == [areas["dqn"]["gaussian-additive"],
                                                                areas["tan-p99.9"]["gaussian-additive"]]
    assert "Robustness: area under the relative-score curve" in (tmp_path / "s" / "report.md").read_text()


@pytest.mark.parametrize("args, message", [(["--executor", "dask"], "unknown executor 'dask'"),
                                           (["--workers", "0"], "--workers must be an integer >= 1")])
def test_a_bad_executor_or_worker_count_is_refused_before_anything_is_written(tmp_path, capsys, args, message):
    rc = main(["study", "--envs", "CartPole-v1", "--seeds", "0", "--agents", "dqn", "--out", str(tmp_path / "s"), *args])
    assert rc == 2 and message in capsys.readouterr().err and not (tmp_path / "s").exists()


def test_train_hours_stops_a_training_at_its_budget_counted_over_every_call(tmp_path):
    from spikeverse.io.checkpoint import read_checkpoint_meta

    spec = _spec(seeds=[0], frames=500_000, agents=["dqn"], train_hours={"CartPole-v1": 1.5 / 3600})
    r = run_study(spec, tmp_path / "s", progress=False)
    cell = json.loads((tmp_path / "s" / "cells" / "train--CartPole-v1--seed0--dqn.json").read_text())
    meta = read_checkpoint_meta(tmp_path / "s" / "runs" / "CartPole-v1" / "seed0" / "dqn" / "checkpoint.safetensors")
    assert cell["train_hours"] == pytest.approx(1.5 / 3600) and 0 < cell["frames"] < 500_000
    assert 1.5 <= meta["wall_s"] < 30 and r["games"]["CartPole-v1"]["agents"]["dqn"]["0"]["n"] == 3
    # a rerun of the cell (its result lost) has no budget left: it stops at once
    (tmp_path / "s" / "cells" / "train--CartPole-v1--seed0--dqn.json").unlink()
    run_study(spec, tmp_path / "s", progress=False)
    again = json.loads((tmp_path / "s" / "cells" / "train--CartPole-v1--seed0--dqn.json").read_text())
    assert again["frames"] - cell["frames"] <= 4  # at most one collection step of CartPole's 4 envs
