"""The conversion methods beyond seed 001's: naive (seed 000), fast (QCFS fine-tune, V_thr/2 start,
analog readout, early decision), the method switch and their persistence."""

import json

import pytest
import torch
from torch import nn

from spikeverse.cli.app import main
from spikeverse.convert import (
    QCFS, activation_stats, agreement, convert_ann, from_module, layer_scales, load_snn, qcfs_finetune, save_snn,
)
from spikeverse.errors import SpikeverseError
from spikeverse.snn.neurons import IFNeuron, LIFNeuron
from test_convert import _flat_mlp


def _flat(sizes=(4, 32, 32, 3), seed=0):
    return _flat_mlp(sizes, seed)[1]


# ----------------------------------------------------------------------------- naive (seed 000)


def test_layer_scales_continue_tenfold():
    assert layer_scales([10, 100], 4) == [10, 100, 1000, 10000]
    assert layer_scales([2], 2) == [2, 20]
    with pytest.raises(SpikeverseError):
        layer_scales([10, 0], 2)


def test_naive_scales_weights_and_uses_lif_with_poisson_input():
    flat = _flat()
    obs = torch.randn(200, 4)
    snn, info = convert_ann(flat, method="naive", stats=activation_stats(flat, obs, 99), timesteps=50)
    assert info["method"] == "naive" and info["scales"] == [10, 100, 1000] and snn.readout == "count"
    src = [m for m in flat.layers if isinstance(m, nn.Linear)]
    dst = [m for m in snn.layers if isinstance(m, nn.Linear)]
    for s, a, b in zip(info["scales"], src, dst):
        torch.testing.assert_close(b.weight, s * a.weight)
        torch.testing.assert_close(b.bias, s * a.bias)
    neurons = [m for m in snn.layers if isinstance(m, (IFNeuron, LIFNeuron))]
    assert len(neurons) == 3 and all(isinstance(m, LIFNeuron) for m in neurons)
    assert snn.encoding == "poisson" and snn.input_scale == pytest.approx(float(obs.abs().max()))
    snn.reset_generator()
    q = snn.q_values(obs[:16])
    assert q.shape == (16, 3) and torch.all(q == q.round()) and snn.diagnostics()["macs_per_decision"] == 0
    snn.reset_generator()  # the same Poisson input again: each input spike reaches the 32 hidden neurons
    input_spikes = int(snn.encode(obs[:16], 50).ne(0).sum())
    assert input_spikes > 0
    assert snn.diagnostics()["layers"][0]["synops_per_decision"] == pytest.approx(input_spikes * 32 / 16)


def test_poisson_input_is_unbiased_signed_and_seeded():
    flat = _flat()
    snn, _ = convert_ann(flat, method="naive", stats=activation_stats(flat, torch.full((4, 4), 2.0), 99))
    x = torch.tensor([[0.5, -1.0, 2.0, 0.0]])
    spikes = snn.encode(x, 20_000)
    assert set(spikes.unique().tolist()) <= {-2.0, 0.0, 2.0}
    torch.testing.assert_close(spikes.mean(0), x, atol=0.03, rtol=0)
    snn.reset_generator()
    a = snn.encode(x, 10)
    snn.reset_generator()
    assert torch.equal(a, snn.encode(x, 10))


# ----------------------------------------------------------------------------- QCFS and fast


def test_channel_wise_normalization_keeps_the_function():
    """ReLU networks are positively homogeneous: with a scale per unit/channel (through a
    Flatten too), the normalized network times lambda_L is the original network."""
    from spikeverse.convert import normalize
    from spikeverse.rl.networks import NetworkSpec, QNetwork

    flat = from_module(QNetwork(NetworkSpec(arch="minatar", obs_shape=(4, 10, 10), num_actions=3, hidden=(32,))))
    g = torch.Generator().manual_seed(0)
    lams = [torch.rand(16, generator=g) + 0.1, torch.rand(32, generator=g) + 0.1, 2.5]
    x = torch.rand(8, 4, 10, 10)
    with torch.no_grad():
        torch.testing.assert_close(normalize(flat, lams)(x) * 2.5, flat(x), rtol=1e-4, atol=1e-5)
    with pytest.raises(SpikeverseError, match="scales for"):
        normalize(flat, [torch.ones(15), torch.ones(32), 1.0])
    with pytest.raises(SpikeverseError, match="> 0"):
        normalize(flat, [torch.zeros(16), torch.ones(32), 1.0])


@pytest.mark.parametrize("levels", [4, 8, 32])
def test_qcfs_equals_the_if_neuron_rate_at_T_equal_L(levels):
    """An IF neuron with threshold lambda, V(0) = lambda/2, reset by subtraction, constant input x
    for T = L steps fires floor(xL/lambda + 1/2) times, clipped to [0, L]: rate x lambda = QCFS(x)."""
    lam = 1.7
    x = torch.linspace(-1.0, 2.5, 2001)
    neuron = IFNeuron(v_th=lam, v_init=lam / 2)
    counts = neuron.multi_step(x.expand(levels, -1)).sum(0)
    torch.testing.assert_close(counts * lam / levels, QCFS(lam, levels)(x).detach(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("levels", [4, 8, 32])
def test_the_rate_twin_is_the_snn_itself_with_one_hidden_layer(levels):
    """With one hidden layer the hidden IF neurons see a constant current, so the twin's staircase
    is their exact count and its output the SNN's membrane readout: equal Q-values. With two, the
    second layer's input spikes come unevenly and the twin differs (timing error) while it still
    agrees with the SNN on most decisions."""
    from spikeverse.convert import SpikingQNetwork
    from spikeverse.convert.qcfs import rate_twin

    obs = torch.randn(512, 4)
    one = _flat((4, 32, 3), seed=1)
    snn = SpikingQNetwork(one, timesteps=levels, readout="membrane", v_init=0.5)
    torch.testing.assert_close(rate_twin(snn, levels)(obs), snn.q_values(obs), atol=1e-4, rtol=1e-4)
    two = _flat((4, 32, 32, 3), seed=2)
    snn2 = SpikingQNetwork(two, timesteps=levels, readout="membrane", v_init=0.5)
    twin2 = rate_twin(snn2, levels)
    assert not torch.allclose(twin2(obs), snn2.q_values(obs), atol=1e-4)
    assert agreement(twin2, snn2, obs) > 0.8
    with pytest.raises(SpikeverseError, match="IF neurons"):
        rate_twin(SpikingQNetwork(one, timesteps=levels, neuron="lif"), levels)


def test_qcfs_gradients_reach_weights_and_thresholds():
    q = QCFS(1.0, 4)
    x = torch.linspace(-0.5, 1.5, 50, requires_grad=True)
    q(x).sum().backward()
    assert q.lam.grad is not None and q.lam.grad != 0
    assert torch.all(x.grad[(x > 0) & (x < 1)] == 1) and torch.all(x.grad[(x < 0) | (x > 1)] == 0)


def test_finetune_recovers_the_teachers_actions():
    teacher = _flat((4, 32, 32, 2), seed=3)
    obs = torch.randn(3000, 4)
    lams = activation_stats(teacher, obs, 99).lambdas(99.9)[:-1]
    ft = qcfs_finetune(teacher, obs, lams, levels=8, steps=350, seed=0, progress=False)
    assert ft.test_agreement > ft.test_before and ft.test_agreement >= 0.9
    assert ft.validation_agreement >= ft.validation_before
    assert [len(lam) for lam in ft.lambdas] == [32, 32] and all(min(lam) > 0 for lam in ft.lambdas)


class _Recorder:
    """Forward pre-hook on the teacher, which the QCFS student inherits (a deep copy): every batch
    either network sees, with whether gradients were on (training) or off (agreement checks)."""

    def __init__(self, teacher, obs):
        self.teacher, self.calls = teacher, []
        self.row = {tuple(r.tolist()): i for i, r in enumerate(obs)}
        teacher.register_forward_pre_hook(self)

    def __deepcopy__(self, memo):  # the student's copy of the hook records here too
        return self

    def __call__(self, module, args):
        rows = {self.row[tuple(r.tolist())] for r in args[0]}
        self.calls.append(("teacher" if module is self.teacher else "student", torch.is_grad_enabled(), rows))


def test_a_gap_tempered_margin_keeps_close_decisions_where_q_values_spread_far_wider():
    """A teacher whose actions share a large state value (Q spread 60x its median gap between the
    two actions): with the cross-entropy's temperature at the Q std the margin term barely sees the
    decisions; at the median gap it does, and the fine-tune keeps more of them."""
    teacher = _flat((4, 32, 32, 2), seed=3)
    out = [m for m in teacher.layers if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        out.weight += torch.randn(out.in_features) * 5
        out.bias += 30.0
    obs = torch.randn(3000, 4)
    lams = activation_stats(teacher, obs, 99).lambdas(99.9)[:-1]
    by = {ms: qcfs_finetune(teacher, obs, lams, levels=8, steps=350, seed=0, progress=False, margin_scale=ms)
          for ms in ("std", "gap")}
    assert by["gap"].test_agreement >= 0.95 and by["gap"].test_agreement > by["std"].test_agreement + 0.01
    with pytest.raises(SpikeverseError, match="margin scale"):
        qcfs_finetune(teacher, obs, lams, levels=8, steps=1, margin_scale="mean", progress=False)


def test_finetune_frames_played_at_several_epsilons():
    """--finetune-epsilons: the fine-tune's frames are equal parts of play at each epsilon, from
    episodes of their own seeds (not the calibration's seed, nor each other's)."""
    from spikeverse.convert.methods import finetune_play
    from spikeverse.convert.normalize import collect_activations

    flat = _flat((4, 16, 2), seed=4)
    obs = finetune_play(flat, "CartPole-v1", 301, [0.0, 1.0], seed=7, progress=False)
    assert obs.shape == (301, 4)
    greedy = collect_activations(flat, "CartPole-v1", frames=151, epsilon=0.0, seed=8, keep_observations=True,
                                 progress=False).observations
    random = collect_activations(flat, "CartPole-v1", frames=150, epsilon=1.0, seed=108, keep_observations=True,
                                 progress=False).observations
    assert torch.equal(obs[:151], greedy) and torch.equal(obs[151:], random)
    snn, info = convert_ann(flat, "CartPole-v1", method="fast", timesteps=8, levels=4, finetune_steps=3,
                            finetune_cycles=3, finetune_frames=300, finetune_epsilons=[0.05, 1.0],
                            margin_scale="gap", frames=100, progress=False)
    assert info["qcfs"]["epsilons"] == [0.05, 1.0] and info["qcfs"]["margin_scale"] == "gap"
    assert info["qcfs"]["frames"] == 300 and info["qcfs"]["max_cycles"] == 3
    assert info["qcfs"]["steps"] == 3 * info["qcfs"]["cycles"] and 1 <= info["qcfs"]["cycles"] <= 3
    for bad in (dict(finetune_epsilons=[1.5]), dict(finetune_epsilons=[]), dict(margin_scale="mean")):
        with pytest.raises(SpikeverseError):
            convert_ann(flat, "CartPole-v1", method="fast", levels=4, **bad)
    with pytest.raises(SpikeverseError, match="does not apply"):
        convert_ann(flat, "CartPole-v1", method="tan", margin_scale="gap")


def test_finetune_selects_on_validation_and_reports_on_unseen_test_frames():
    teacher = _flat((4, 16, 16, 3), seed=4)
    obs = torch.randn(400, 4)
    lams = activation_stats(teacher, obs, 99).lambdas(99.9)[:-1]
    rec = _Recorder(teacher, obs)
    ft = qcfs_finetune(teacher, obs, lams, levels=4, steps=60, batch_size=64, checks=6, validation=0.15, test=0.2,
                       seed=1, progress=False)
    train, val, test = (set(ft.splits[k].tolist()) for k in ("train", "validation", "test"))
    assert (len(train), len(val), len(test)) == (260, 60, 80) and ft.split_sizes["test"] == 80
    assert not (train & val or train & test or val & test) and train | val | test == set(range(400))
    learned = [r for who, grad, r in rec.calls if who == "student" and grad]
    labelled = [r for who, grad, r in rec.calls if who == "teacher" and r & train]
    checks = [r for who, grad, r in rec.calls if who == "student" and not grad]
    assert len(learned) == 60 and all(r <= train for r in learned)  # the training steps see train frames only
    assert labelled and all(r <= train for r in labelled)
    # agreement checks: the validation split before, at each of the 6 checks (the selection), and the
    # test split twice, before and for the kept weights at the end; never test frames during selection
    assert [("val" if r == val else "test" if r == test else "other") for r in checks] == \
        ["val", "test"] + ["val"] * 6 + ["test"]
    # the reported numbers are the kept network's agreement on exactly those frames
    from spikeverse.convert.qcfs import qcfs_network

    kept = qcfs_network(ft.net, ft.lambdas, 4).eval()
    for idx, value in ((ft.splits["test"], ft.test_agreement), (ft.splits["validation"], ft.validation_agreement)):
        assert agreement(kept, teacher, obs[idx]) == pytest.approx(value, abs=1e-12)
    with pytest.raises(SpikeverseError, match="validation and test"):
        qcfs_finetune(teacher, obs, lams, validation=0.5, test=0.5, steps=1)
    with pytest.raises(SpikeverseError, match="frames to train on"):
        qcfs_finetune(teacher, obs[:2], lams, steps=1)


def test_early_stopping_runs_cosine_cycles_while_the_validation_agreement_rises():
    """cycles: up to that many cycles of `steps`, each from the best weights, while a cycle raises
    the validation agreement; the first cycle is the one-cycle fine-tune itself."""
    teacher = _flat((4, 32, 32, 2), seed=3)
    obs = torch.randn(6000, 4, generator=torch.Generator().manual_seed(0))
    lams = activation_stats(teacher, obs, 99).lambdas(99.9)[:-1]
    one = qcfs_finetune(teacher, obs, lams, levels=4, steps=80, seed=0, progress=False)
    long = qcfs_finetune(teacher, obs, lams, levels=4, steps=80, cycles=50, seed=0, progress=False)
    assert (one.cycles, one.steps) == (1, 80)
    assert 3 <= long.cycles < 50 and long.steps == 80 * long.cycles  # it stopped by itself
    assert long.validation_agreement > one.validation_agreement and long.test_agreement > one.test_agreement
    capped = qcfs_finetune(teacher, obs, lams, levels=4, steps=80, cycles=2, seed=0, progress=False)
    assert (capped.cycles, capped.steps) == (2, 160)
    for bad in (0, 1.5):
        with pytest.raises(SpikeverseError, match="cycles"):
            qcfs_finetune(teacher, obs, lams, steps=40, cycles=bad, progress=False)


def test_early_stopping_stops_after_a_cycle_that_keeps_nothing(capsys):
    """With a generous budget the cycles stop by themselves: the last one raised nothing (or the
    validation agreement is 1)."""
    teacher = _flat((4, 16, 2), seed=5)
    obs = torch.randn(1500, 4, generator=torch.Generator().manual_seed(1))
    lams = activation_stats(teacher, obs, 99).lambdas(99.9)[:-1]
    ft = qcfs_finetune(teacher, obs, lams, levels=32, steps=150, cycles=40, seed=0, progress=False)
    assert ft.cycles < 40 and ft.steps == 150 * ft.cycles
    qcfs_finetune(teacher, obs, lams, levels=32, steps=150, cycles=40, seed=0)  # progress None: lines off a tty
    assert f"fine-tune: early stop after {ft.cycles} of 40 cycles" in capsys.readouterr().err


def test_finetune_reports_its_progress(capsys):
    teacher = _flat((4, 8, 8, 2), seed=6)
    obs = torch.randn(200, 4)
    lams = activation_stats(teacher, obs, 99).lambdas(99.9)[:-1]
    qcfs_finetune(teacher, obs, lams, levels=4, steps=20, batch_size=32, checks=4)  # progress None: lines off a tty
    lines = [l for l in capsys.readouterr().err.splitlines() if l.startswith("fine-tune:")]
    assert lines and lines[-1].startswith("fine-tune: 20/20 step (100%) loss=") and " agreement=" in lines[-1]
    qcfs_finetune(teacher, obs, lams, levels=4, steps=20, batch_size=32, progress=False)
    assert "fine-tune" not in capsys.readouterr().err


def test_fast_method_records_its_splits_and_test_agreement():
    teacher = _flat((4, 16, 16, 2), seed=5)
    obs = torch.randn(500, 4)
    stats = activation_stats(teacher, obs, 99)
    stats.observations = obs
    _, info = convert_ann(teacher, method="fast", stats=stats, levels=4, finetune_steps=20, finetune_frames=300)
    q = info["qcfs"]
    assert q["splits"] == {"train": 240, "validation": 30, "test": 30} and q["frames"] == 300
    assert 0.0 < q["test_agreement"] <= 1.0 and 0.0 < q["validation_agreement"] <= 1.0
    assert "heldout_agreement_after" not in q


def test_snn_dirs_saved_with_the_old_heldout_keys_still_load(tmp_path):
    """Before the train/validation/test split the fast method saved qcfs.heldout_agreement_before/
    after (measured on its selection split); nothing reads those fields, and such a folder loads."""
    flat = _flat()
    stats = activation_stats(flat, torch.randn(50, 4), 99)
    snn, info = convert_ann(flat, method="fast", stats=stats, timesteps=8, levels=0)
    old = dict(levels=8, steps=10, frames=100, heldout_agreement_before=0.8, heldout_agreement_after=0.99)
    save_snn(tmp_path / "old", snn, flat, dict(env_id="CartPole-v1", **{**info, "qcfs": old}))
    back, meta = load_snn(tmp_path / "old")
    assert meta["qcfs"] == old and torch.equal(back.q_values(torch.ones(3, 4)), snn.q_values(torch.ones(3, 4)))


def test_fast_beats_tan_at_short_windows():
    teacher = _flat((4, 64, 64, 3), seed=1)
    obs, held = torch.randn(3000, 4), torch.randn(2000, 4)
    stats = activation_stats(teacher, obs, 99)
    stats.observations = obs
    tan, _ = convert_ann(teacher, method="tan", stats=stats, timesteps=8)
    fast, info = convert_ann(teacher, method="fast", stats=stats, timesteps=8, levels=8, finetune_steps=160)
    assert fast.readout == "membrane" and fast.v_init == 0.5 and info["qcfs"]["levels"] == 8
    assert agreement(fast, teacher, held) > agreement(tan, teacher, held) + 0.05


def test_early_decision_takes_the_full_windows_decision_in_fewer_steps():
    teacher = _flat((4, 32, 32, 4), seed=2)
    obs = torch.randn(500, 4) * 2
    stats = activation_stats(teacher, obs, 99)
    full, _ = convert_ann(teacher, method="fast", stats=stats, timesteps=64, levels=0)
    early, _ = convert_ann(teacher, method="fast", stats=stats, timesteps=64, levels=0, early_decision=True)
    assert torch.equal(full.q_values(obs).argmax(-1), early.q_values(obs).argmax(-1))
    steps = early.last_steps
    assert steps.max() <= 64 and steps.float().mean() < 64
    d_early, d_full = early.diagnostics(), full.diagnostics()
    assert d_early["mean_timesteps_per_decision"] == pytest.approx(float(steps.float().mean()))
    assert d_early["synops_per_decision"] < d_full["synops_per_decision"]
    early.readout = "count"
    with pytest.raises(SpikeverseError, match="early decision"):
        early.q_values(obs[:2])


def test_options_survive_save_and_load(tmp_path):
    flat = _flat()
    obs = torch.randn(100, 4)
    stats = activation_stats(flat, obs, 99)
    for method, extra in (("naive", {}), ("fast", dict(levels=0, early_decision=True))):
        snn, info = convert_ann(flat, method=method, stats=stats, timesteps=16, **extra)
        save_snn(tmp_path / method, snn, flat, dict(env_id="CartPole-v1", **info))
        back, meta = load_snn(tmp_path / method)
        assert back.options() == snn.options() and meta["method"] == method
        if method == "naive":
            snn.reset_generator()
        assert torch.equal(back.q_values(obs[:8]), snn.q_values(obs[:8]))


def test_unknown_method_and_bad_options():
    flat = _flat()
    stats = activation_stats(flat, torch.randn(10, 4), 99)
    with pytest.raises(SpikeverseError, match="naive, tan, fast"):
        convert_ann(flat, method="burst", stats=stats)
    with pytest.raises(SpikeverseError):
        convert_ann(flat, method="fast", stats=stats, levels=-1)
    with pytest.raises(SpikeverseError):
        convert_ann(flat, method="fast", stats=stats, v_init=1.5)


def test_cli_converts_with_each_method(tmp_path, capsys):
    from spikeverse.convert import load_ann
    from spikeverse.rl.config import DQNConfig
    from spikeverse.rl.evaluation import evaluate
    from spikeverse.rl.train import train_dqn

    run = tmp_path / "dqn"
    train_dqn(DQNConfig.for_env("CartPole-v1", total_steps=1000, eval_interval=0, device="cpu"), run, progress=False)
    for method, extra in (("naive", ["--scales", "5,50"]), ("fast", ["--levels", "4", "--finetune-steps", "4", "--finetune-frames", "500"])):
        rc = main(["convert", str(run), "--method", method, "--frames", "300", "--json", "--device", "cpu", *extra])
        out, err = capsys.readouterr()
        assert rc == 0, err
        summary = json.loads(out)
        assert summary["method"] == method
        rc = main(["evaluate", summary["snn_dir"], "--episodes", "1", "--json", "--device", "cpu"])
        out, err = capsys.readouterr()
        assert rc == 0, err
        # the CLI's conversion rate is the library's, with the saved source ANN in the shadow
        snn, _ = load_snn(summary["snn_dir"])
        ref = evaluate(snn, "CartPole-v1", episodes=1, seed=0, shadow=load_ann(summary["snn_dir"]))
        assert json.loads(out)["conversion_rate"] == ref.conversion_rate is not None
    assert summary["timesteps"] == 32 and summary["qcfs"]["levels"] == 4
    rc = main(["convert", str(run), "--method", "naive", "--scales", "ten", "--frames", "10"])
    assert rc == 2 and "--scales" in capsys.readouterr().err


def test_mixed_level_set():
    from spikeverse.convert.methods import mixed_level_set

    assert mixed_level_set(32) == [4, 8, 16, 32] and mixed_level_set(4) == [4] and mixed_level_set(12) == [6, 12]
