"""``spikeverse convert --frames-from FILE.npy`` (issue 16): frames the user supplies (e.g. the DQN's
training replay) join the frames the DQN plays, in the statistics of every method and in the fast
method's fine-tune; the file is checked before any play and recorded with the SNN. The bad files
are rows of test_cli_errors.py (one line, exit 2, nothing written)."""

import hashlib
import json

import numpy as np
import pytest
import torch

import spikeverse.convert.methods as methods
from spikeverse.cli.app import main
from spikeverse.convert import (
    activation_stats, check_frames, collect_activations, convert_tan, load_frames, load_snn, load_source,
)
from spikeverse.errors import SpikeverseError

pytestmark = pytest.mark.usefixtures("one_thread")

ENV, FRAMES, EPSILON, SEED = "CartPole-v1", 200, 0.05, 0
Q = ["--no-progress", "--device", "cpu", "--json"]


@pytest.fixture(scope="module")
def dqn(tmp_path_factory, one_thread):
    """A tiny CartPole DQN run, its network as converted, and frames of its play x 10 (states the
    DQN's own play never reaches) saved as a .npy file."""
    root = tmp_path_factory.mktemp("frames_from")
    run = root / "dqn"
    assert main(["train", "--env", ENV, "--steps", "300", "--eval-every", "0", "--out", str(run), "--no-progress"]) == 0
    ann, _, _ = load_source(run)
    far = collect_activations(ann, ENV, frames=60, seed=7, keep_observations=True, progress=False).observations * 10
    path = root / "far.npy"
    np.save(path, far.numpy())
    return dict(run=run, ann=ann, path=path, frames=far.to(torch.float32))


def _convert(dqn, tmp_path, capsys, *args):
    rc = main(["convert", str(dqn["run"]), "--frames", str(FRAMES), "--out", str(tmp_path / "snn"), *Q, *args])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return json.loads(out)


def _collection(ann):
    """The conversion's own collection (FRAMES frames played at EPSILON, SEED), with its frames."""
    return collect_activations(ann, ENV, frames=FRAMES, epsilon=EPSILON, seed=SEED, min_percentile=99,
                               keep_observations=True, progress=False)


def _played(ann):
    return _collection(ann).observations.to(torch.float32)


def _rows(frames):
    """The frames as a sorted list of rows (a multiset: order left out)."""
    return sorted(map(tuple, frames.tolist()))


def test_tan_lambdas_cover_the_played_and_the_given_frames(dqn, tmp_path, capsys):
    plain = _convert(dqn, tmp_path / "a", capsys)
    given = _convert(dqn, tmp_path / "b", capsys, "--frames-from", str(dqn["path"]))
    played = _played(dqn["ann"])
    expected = activation_stats(dqn["ann"], torch.cat([played, dqn["frames"]]), 99).lambdas(99.9)
    assert given["lambdas"] == pytest.approx(expected, rel=1e-6)
    # without the file: the played frames only, exactly as before the option existed
    assert plain["lambdas"] == _collection(dqn["ann"]).lambdas(99.9)
    assert max(abs(g / p - 1) for g, p in zip(given["lambdas"], plain["lambdas"])) > 0.5  # x10 states: far larger
    assert "extra_frames" not in plain["collection"] and "frames_from" not in plain["collection"]
    assert given["collection"]["frames"] == FRAMES  # played frames, as before; the file's are counted apart


def test_the_library_takes_the_frames_as_a_tensor(dqn, tmp_path, capsys):
    cli = _convert(dqn, tmp_path, capsys, "--frames-from", str(dqn["path"]))
    _, info = convert_tan(dqn["ann"], ENV, frames=FRAMES, extra_frames=torch.as_tensor(np.load(dqn["path"])),
                          progress=False)
    assert info["lambdas"] == cli["lambdas"] and info["collection"]["extra_frames"] == len(dqn["frames"])
    assert torch.equal(load_frames(dqn["path"], (4,)), dqn["frames"])
    with pytest.raises(SpikeverseError, match=r"extra_frames holds an array of shape \(60, 2\), expected \(N, 4\)"):
        convert_tan(dqn["ann"], ENV, extra_frames=dqn["frames"][:, :2])
    stats = activation_stats(dqn["ann"], _played(dqn["ann"]), 99)  # stats that do not cover the frames
    with pytest.raises(SpikeverseError, match="cover 0 extra frames, not the 60"):
        convert_tan(dqn["ann"], stats=stats, extra_frames=dqn["frames"])


def test_naive_input_range_covers_the_given_frames(dqn, tmp_path, capsys):
    given = _convert(dqn, tmp_path, capsys, "--method", "naive", "--frames-from", str(dqn["path"]))
    lo, hi = given["collection"]["input_range"]
    both = torch.cat([_played(dqn["ann"]), dqn["frames"]])
    assert (lo, hi) == (float(both.min()), float(both.max()))


def test_fast_finetune_learns_from_the_played_and_the_given_frames(dqn, tmp_path, capsys, monkeypatch):
    seen = []
    finetune = methods.qcfs_finetune

    def spy(ann, observations, *args, **kwargs):
        seen.append(torch.as_tensor(observations).to(torch.float32).clone())
        return finetune(ann, observations, *args, **kwargs)

    monkeypatch.setattr(methods, "qcfs_finetune", spy)
    fast = ["--method", "fast", "--levels", "4", "--finetune-steps", "3", "--finetune-frames", "100"]
    plain = _convert(dqn, tmp_path / "a", capsys, *fast)
    given = _convert(dqn, tmp_path / "b", capsys, *fast, "--frames-from", str(dqn["path"]))
    n = len(dqn["frames"])
    assert plain["qcfs"]["frames"] == 100 and given["qcfs"]["frames"] == 100 + n
    assert sum(given["qcfs"]["splits"].values()) == 100 + n
    # the same played frames, plus every frame of the file
    assert len(seen) == 2 and _rows(seen[1]) == _rows(torch.cat([seen[0], dqn["frames"]]))
    # and the thresholds the fine-tune starts from: percentiles over played + given frames
    played = _played(dqn["ann"])
    assert given["collection"]["extra_frames"] == n
    assert activation_stats(dqn["ann"], torch.cat([played, dqn["frames"]]), 99).lambdas(99.9)[-1] == \
        pytest.approx(given["lambdas"][-1], rel=1e-6)  # the output layer's is not fine-tuned


def test_the_snn_records_the_file_it_was_calibrated_on(dqn, tmp_path, capsys):
    given = _convert(dqn, tmp_path, capsys, "--frames-from", str(dqn["path"]))
    _, meta = load_snn(given["snn_dir"])
    assert meta["collection"]["frames_from"] == dict(path=str(dqn["path"]), frames=len(dqn["frames"]),
                                                     sha256=hashlib.sha256(dqn["path"].read_bytes()).hexdigest())
    assert given["collection"]["frames_from"] == meta["collection"]["frames_from"]


@pytest.mark.parametrize("method", ["tan", "fast"])
def test_a_bad_file_is_refused_before_any_play(dqn, tmp_path, capsys, monkeypatch, method):
    def no_play(*args, **kwargs):
        raise AssertionError("played before the frames file was checked")

    monkeypatch.setattr(methods, "collect_activations", no_play)
    bad = tmp_path / "bad.npy"
    np.save(bad, np.full((5, 4), np.inf, np.float32))
    rc = main(["convert", str(dqn["run"]), "--method", method, "--frames-from", str(bad), "--out",
               str(tmp_path / "snn"), "--no-progress", "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "NaN or infinite" in err[0], err
    assert not (tmp_path / "snn").exists()


def test_check_frames_takes_any_real_dtype_and_byte_order():
    for dtype in (np.uint8, np.int64, np.float16, np.float64, ">f4", bool):
        out = check_frames(np.ones((2, 3), dtype), (3,))
        assert out.dtype == torch.float32 and torch.equal(out, torch.ones(2, 3))
    with pytest.raises(SpikeverseError, match="as float32"):
        check_frames(np.array([[1e300, 0.0, 0.0]]), (3,))  # finite in float64, not in float32
