"""``--timesteps auto`` (issue 15): agreement against T on held-out frames, and the smallest T of
the grid whose agreement with the DQN reaches the target."""

import json

import pytest
import torch
from torch import nn

from spikeverse.cli.app import main
from spikeverse.convert import activation_stats, agreement, convert_tan, from_module, load_ann, load_snn
from spikeverse.convert.timesteps import T_GRID, agreement_vs_timesteps, choose_timesteps, heldout_frames
from spikeverse.runtime import HELDOUT_SEED_OFFSET

pytestmark = pytest.mark.usefixtures("one_thread")


def _tan_snn():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))
    flat = from_module(net, input_shape=(4,))
    obs = torch.rand(800, 4)
    snn, _ = convert_tan(flat, percentile=99.9, timesteps=100, stats=activation_stats(flat, obs, min_percentile=99.9))
    return snn, flat, obs


def test_the_curve_is_the_agreement_at_each_t_and_stops_at_the_target():
    snn, flat, obs = _tan_snn()
    full = agreement_vs_timesteps(snn, flat, obs)
    assert [p["timesteps"] for p in full] == sorted(T_GRID) and snn.timesteps == 100  # T left as it was
    for p in full:
        snn.timesteps = p["timesteps"]
        assert p["agreement"] == pytest.approx(agreement(snn, flat, obs), abs=1e-5)
    assert full[0]["agreement"] < full[-1]["agreement"]  # T matters on this network
    target = full[3]["agreement"]  # reached at T = 32 at the latest
    stopped = agreement_vs_timesteps(snn, flat, obs, target=target)
    first = next(i for i, p in enumerate(full) if p["agreement"] >= target)
    assert stopped == full[:first + 1]


def test_choose_takes_the_smallest_t_that_reaches_the_target_else_the_best():
    curve = [dict(timesteps=4, agreement=0.9), dict(timesteps=8, agreement=0.995), dict(timesteps=16, agreement=0.999)]
    assert choose_timesteps(curve, 0.99) == (8, True)
    assert choose_timesteps(curve, 0.9) == (4, True)
    assert choose_timesteps(curve, 1.0) == (16, False)
    ties = [dict(timesteps=4, agreement=0.8), dict(timesteps=8, agreement=0.95), dict(timesteps=16, agreement=0.95)]
    assert choose_timesteps(ties, 0.99) == (8, False)


def test_heldout_frames_come_from_other_episodes_than_the_collection():
    _, flat, _ = _tan_snn()
    flat2 = from_module(nn.Sequential(nn.Linear(4, 2)), input_shape=(4,))
    held = heldout_frames(flat2, "CartPole-v1", frames=300, seed=0, progress=False)
    from spikeverse.convert.normalize import collect_activations

    seen = collect_activations(flat2, "CartPole-v1", frames=300, seed=0, keep_observations=True, progress=False)
    again = collect_activations(flat2, "CartPole-v1", frames=300, seed=HELDOUT_SEED_OFFSET, keep_observations=True,
                                progress=False)
    assert held.shape == (300, 4) and torch.equal(held, again.observations)
    assert not torch.equal(held, seen.observations)


def test_convert_timesteps_auto_through_the_cli(tmp_path, capsys):
    from spikeverse.rl.config import DQNConfig
    from spikeverse.rl.train import train_dqn

    run = tmp_path / "dqn"
    train_dqn(DQNConfig.for_env("CartPole-v1", total_steps=1500, eval_interval=0, device="cpu"), run, progress=False)
    snn_dir = tmp_path / "snn"
    rc = main(["convert", str(run), "--frames", "400", "--timesteps", "auto", "--agreement-target", "0.97",
               "--heldout-frames", "300", "--out", str(snn_dir), "--json", "--device", "cpu", "--no-progress"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    summary = json.loads(out)
    auto = summary["timesteps_auto"]
    assert auto["target"] == 0.97 and auto["heldout_frames"] == 300 and auto["heldout_seed"] == HELDOUT_SEED_OFFSET
    ts = [p["timesteps"] for p in auto["curve"]]
    assert ts == sorted(T_GRID)[:len(ts)]
    assert summary["timesteps"] == auto["timesteps"]
    if auto["reached"]:  # the first T at the target is the chosen one, and the search stopped there
        assert auto["curve"][-1]["agreement"] >= 0.97 and auto["timesteps"] == ts[-1]
        assert all(p["agreement"] < 0.97 for p in auto["curve"][:-1])
    snn, meta = load_snn(snn_dir)
    assert snn.timesteps == auto["timesteps"] and meta["timesteps_auto"] == auto
    # the saved curve is the agreement measured again on the same held-out frames
    obs = heldout_frames(load_ann(snn_dir), "CartPole-v1", frames=300, seed=0, progress=False)
    snn.timesteps = ts[0]
    assert agreement(snn, load_ann(snn_dir), obs) == pytest.approx(auto["curve"][0]["agreement"], abs=1e-5)


@pytest.mark.parametrize("args, message", [
    (["--agreement-target", "0.9"], "--agreement-target applies to --timesteps auto only"),
    (["--heldout-frames", "100"], "--heldout-frames applies to --timesteps auto only"),
    (["--timesteps", "abc"], "--timesteps takes an integer >= 1 or auto"),
    (["--timesteps", "auto", "--agreement-target", "1.5"], "--agreement-target must be in (0, 1]"),
    (["--timesteps", "auto", "--heldout-frames", "0"], "--heldout-frames must be an integer >= 1"),
])
def test_bad_auto_options_are_refused_before_any_work(tmp_path, capsys, args, message):
    rc = main(["convert", str(tmp_path / "missing-run"), *args, "--out", str(tmp_path / "snn")])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "snn").exists()
