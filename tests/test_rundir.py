"""The run-directory lifecycle every trainer shares (io.rundir.RunDir): open or refuse, resume or
start fresh (truncating the metrics), atomic checkpoints, the best weights so far."""

import csv
import os

import pytest
import torch

from spikeverse.errors import SpikeverseError
from spikeverse.io.checkpoint import load_checkpoint
from spikeverse.io.rundir import CHECKPOINT, Best, RunDir, config_diff, read_config

CONFIG = {"agent": "toy", "seed": 0, "steps": 10, "net": {"hidden": 4, "tau": 2.0}}


def _open(path, config=CONFIG, **kw):
    return RunDir(path, config, **{"accepts": ("toy",), "label": "toy", "kind": "toy", "resumable": ("steps",), **kw})


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _finished(path, steps=(1, 2, 3), checkpoint_at=2):
    """A run that logged ``steps`` and checkpointed at step ``checkpoint_at`` (None: never)."""
    run = _open(path)
    run.begin()
    log = run.metrics("metrics.csv", ["step", "value"])
    for s in steps:
        log.write(dict(step=s, value=10 * s))
        if s == checkpoint_at:
            run.save({"w": torch.full((3,), float(s))}, {"step": s})
    log.close()


def test_a_fresh_directory_is_written_only_by_begin(tmp_path):
    d = tmp_path / "run"
    run = _open(d)
    assert run.saved is None and not run.resuming and not d.exists()
    run.begin()
    assert read_config(d) == CONFIG


def test_a_file_is_refused(tmp_path):
    f = tmp_path / "afile"
    f.write_text("not a run")
    with pytest.raises(SpikeverseError, match="is a file, not a run directory") as e:
        _open(f)
    assert "\n" not in str(e.value) and f.read_text() == "not a run"


def test_another_trainers_run_is_refused(tmp_path):
    _finished(tmp_path)
    with pytest.raises(SpikeverseError, match=r"holds a 'toy' run, not an ES run \(expected 'es'\)") as e:
        RunDir(tmp_path, {"method": "es"}, accepts=("es",), label="ES", kind="toy")
    assert "\n" not in str(e.value)


def test_a_run_with_other_options_is_refused_and_the_budget_may_grow(tmp_path):
    _finished(tmp_path)
    other = {**CONFIG, "net": {"hidden": 8, "tau": 2.0}}
    with pytest.raises(SpikeverseError, match=r"another toy run, with other options \(net.hidden=4, not 8\)"):
        _open(tmp_path, other)
    assert read_config(tmp_path) == CONFIG  # nothing written
    assert _open(tmp_path, {**CONFIG, "steps": 20}).resuming  # a larger budget continues the run


def test_no_resume_and_a_checkpoint_without_config_are_refused(tmp_path):
    _finished(tmp_path)
    with pytest.raises(SpikeverseError, match="--no-resume"):
        _open(tmp_path, resume=False)
    (tmp_path / "config.yaml").unlink()
    with pytest.raises(SpikeverseError, match="a checkpoint but no config.yaml"):
        _open(tmp_path)


def test_the_checkpoint_kind_and_method_are_checked(tmp_path):
    _finished(tmp_path)
    with pytest.raises(SpikeverseError, match="expected 'other'"):
        _open(tmp_path, kind="other")
    with pytest.raises(SpikeverseError, match="holds a 'None' toy checkpoint"):
        _open(tmp_path, method="es")


def test_resume_loads_the_checkpoint_and_drops_rows_logged_after_it(tmp_path):
    _finished(tmp_path, steps=(1, 2, 3), checkpoint_at=2)
    run = _open(tmp_path)
    tensors, meta = run.saved
    assert run.resuming and meta["step"] == 2 and meta["kind"] == "toy" and torch.equal(tensors["w"], torch.full((3,), 2.0))
    log = run.metrics("metrics.csv", ["step", "value"], step=meta["step"])
    log.write(dict(step=3, value=33))
    log.close()
    assert [(r["step"], r["value"]) for r in _rows(tmp_path / "metrics.csv")] == [("1", "10"), ("2", "20"), ("3", "33")]


def test_a_fresh_start_truncates_the_metrics_of_a_run_killed_before_its_first_checkpoint(tmp_path):
    _finished(tmp_path, steps=(1, 2), checkpoint_at=None)
    assert len(_rows(tmp_path / "metrics.csv")) == 2 and not (tmp_path / CHECKPOINT).exists()
    run = _open(tmp_path, {**CONFIG, "seed": 1})  # nothing to continue: other options start afresh
    assert run.saved is None
    run.begin()
    log = run.metrics("metrics.csv", ["step", "value"], step=0)
    log.write(dict(step=1, value=7))
    log.close()
    assert _rows(tmp_path / "metrics.csv") == [{"step": "1", "value": "7"}]
    assert read_config(tmp_path)["seed"] == 1


def test_metrics_rewritten_from_a_history_start_empty_even_when_resuming(tmp_path):
    _finished(tmp_path)
    log = _open(tmp_path).metrics("metrics.csv", ["step", "value"], fresh=True)
    log.close()
    assert _rows(tmp_path / "metrics.csv") == []


def test_an_interrupted_checkpoint_write_leaves_the_previous_one_and_no_half_file(tmp_path, monkeypatch):
    _finished(tmp_path, steps=(1, 2), checkpoint_at=2)
    before = (tmp_path / CHECKPOINT).read_bytes()
    run = _open(tmp_path)

    def killed(fd):
        raise KeyboardInterrupt  # the process stops after the bytes are written, before the rename

    monkeypatch.setattr(os, "fsync", killed)
    with pytest.raises(KeyboardInterrupt):
        run.save({"w": torch.zeros(1000)}, {"step": 99})
    monkeypatch.undo()
    assert (tmp_path / CHECKPOINT).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.safetensors", "config.yaml", "metrics.csv"]
    assert load_checkpoint(tmp_path)[1]["step"] == 2


def test_config_diff_names_nested_keys_and_leaves_out_the_budget():
    old = {"method": "ga", "ga": {"generations": 5, "seed": 0}, "network": {"hidden": 5}}
    assert config_diff(old, {**old, "ga": {"generations": 9, "seed": 0}}, ("ga.generations",)) == []
    assert config_diff(old, {**old, "network": {"hidden": 6}}, ("ga.generations",)) == ["network.hidden"]
    assert config_diff(old, {"method": "ga", "ga": old["ga"]}) == ["network"]


def test_best_keeps_the_latest_or_the_first_of_equal_scores():
    calls = []
    best = Best()
    assert not best.found
    assert best.offer(1.0, lambda: "a", 1)
    assert best.offer(1.0, lambda: "b", 2) and best.value == "b" and best.at == 2  # latest on ties
    assert not best.offer(0.5, lambda: calls.append(1), 3) and calls == []  # the value is made only when kept
    first = Best()
    first.offer(1.0, lambda: "a", 1, latest=False)
    assert not first.offer(1.0, lambda: "b", 2, latest=False) and first.value == "a"
