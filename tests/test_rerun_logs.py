"""A run killed before its first checkpoint and rerun starts its logs afresh (issue 11, item 6):
metrics.csv, evals.csv (DQN, R-STDP), generations.csv and individuals.csv (GA, ES) hold each
row once, exactly as an uninterrupted run writes them. The kill is simulated by deleting the
checkpoint of a finished run: what is left (config.yaml, the CSV files) is what a run killed
before its first checkpoint leaves behind. One DQN case kills a real process with SIGKILL."""

import csv
import os
import signal
import subprocess
import sys
import time

import pytest

from spikeverse.cli.app import main
from spikeverse.io.rundir import CHECKPOINT, MetricsWriter

pytestmark = pytest.mark.usefixtures("one_thread")


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _strip_wall(rows):
    """Rows without their timing columns (those differ between two runs of the same config)."""
    return [{k: v for k, v in r.items() if k not in ("wall_s", "steps_per_s")} for r in rows]


def _kill_and_rerun(capsys, argv, run_dir, logs):
    """Run ``argv`` into ``run_dir``, drop its checkpoint, rerun it; every log must equal the first run's."""
    assert main([str(a) for a in argv]) == 0
    first = {name: _rows(run_dir / name) for name in logs}
    assert all(first.values()), first  # each log has rows to duplicate
    (run_dir / CHECKPOINT).unlink()
    assert main([str(a) for a in argv]) == 0
    capsys.readouterr()
    for name in logs:
        again = _rows(run_dir / name)
        assert len(again) == len(first[name]), (name, len(again), len(first[name]))
        assert _strip_wall(again) == _strip_wall(first[name]), name


def test_dqn_rerun_without_checkpoint_starts_metrics_afresh(tmp_path, capsys):
    d = tmp_path / "dqn"
    argv = ["train", "--env", "CartPole-v1", "--steps", 400, "--eval-every", 200, "--device", "cpu", "--out", d,
            "--no-progress"]
    _kill_and_rerun(capsys, argv, d, ["metrics.csv"])
    episodes = [int(r["episode"]) for r in _rows(d / "metrics.csv")]
    assert episodes == list(range(1, len(episodes) + 1))


def test_dqn_evals_start_afresh_too(tmp_path):
    """evals.csv: rows of a run without checkpoint are dropped (the DQN writes them only after
    learning starts, so this checks the writer the trainer uses)."""
    p = tmp_path / "evals.csv"
    w = MetricsWriter(p, ["step", "mean"])
    w.write(dict(step=100, mean=1.0))
    w.close()
    w = MetricsWriter(p, ["step", "mean"], fresh=True)
    w.write(dict(step=100, mean=2.0))
    w.close()
    assert _rows(p) == [{"step": "100", "mean": "2.0"}]
    w = MetricsWriter(p, ["step", "mean"])  # resuming (fresh=False) appends
    w.write(dict(step=200, mean=3.0))
    w.close()
    assert [r["step"] for r in _rows(p)] == ["100", "200"]


def test_tabular_rerun_without_checkpoint(tmp_path, capsys):
    d = tmp_path / "tab"
    _kill_and_rerun(capsys, ["train", "--env", "Taxi-v3", "--steps", 30, "--out", d, "--no-progress"], d,
                    ["metrics.csv"])


def test_rstdp_rerun_without_checkpoint(tmp_path, capsys):
    d = tmp_path / "rstdp"
    _kill_and_rerun(capsys, ["train", "--agent", "rstdp", "--steps", 2, "--eval-every", 1, "--out", d,
                             "--no-progress"], d, ["metrics.csv", "evals.csv"])


def test_ga_rerun_without_checkpoint(tmp_path, capsys):
    d = tmp_path / "ga"
    _kill_and_rerun(capsys, ["evolve", "--population", 4, "--generations", 2, "--target", 9, "--out", d,
                             "--no-progress"], d, ["generations.csv", "individuals.csv"])


def test_es_rerun_without_checkpoint(tmp_path, capsys):
    d = tmp_path / "es"
    _kill_and_rerun(capsys, ["evolve", "--method", "es", "--env", "CartPole-v1", "--population", 2,
                             "--generations", 1, "--episodes", 1, "--out", d, "--no-progress"], d,
                    ["generations.csv", "individuals.csv"])


def test_dqn_sigkilled_before_its_first_checkpoint(tmp_path):
    """A real kill: a DQN run with a checkpoint interval beyond its budget is SIGKILLed once it has
    logged episodes; the rerun's metrics.csv counts its episodes from 1, once each."""
    d = tmp_path / "run"
    cmd = [sys.executable, "-m", "spikeverse.cli", "train", "--env", "CartPole-v1", "--steps", "100000",
           "--checkpoint-every", "1000000", "--eval-every", "0", "--device", "cpu", "--no-progress", "--out", str(d)]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.time() + 120
        while time.time() < deadline and len(_rows(d / "metrics.csv") if (d / "metrics.csv").exists() else []) < 5:
            time.sleep(0.2)
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    killed = _rows(d / "metrics.csv")
    assert len(killed) >= 5 and not (d / CHECKPOINT).exists()
    assert main(["train", "--env", "CartPole-v1", "--steps", "300", "--eval-every", "0", "--device", "cpu",
                 "--no-progress", "--out", str(d)]) == 0
    episodes = [int(r["episode"]) for r in _rows(d / "metrics.csv")]
    assert episodes == list(range(1, len(episodes) + 1))
    assert max(int(r["step"]) for r in _rows(d / "metrics.csv")) <= 300
