"""The CartPole SNN of Hasegan et al. (seed 002 sec. 2.3): its decisions, genome layout, batched
simulation and environment; the evolution strategy (update, determinism across workers, resume,
run directories); R-STDP (the rule inside the agent, training through the CLI, resume)."""

import csv
import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from spikeverse.agents import load_policy
from spikeverse.cli.app import main
from spikeverse.errors import SpikeverseError
from spikeverse.envs.batched_cartpole import CartPoleBatch, episode_starts
from spikeverse.evo.es import Adam, ESConfig, centered_ranks, es_gradient, population, run_es
from spikeverse.evo.executor import make_executor
from spikeverse.models.cartpole_snn import CartPoleSNN, SNNPolicy, decide, load_cartpole_snn
from spikeverse.runtime import derive_seed, quantize
from spikeverse.io.checkpoint import load_checkpoint
from spikeverse.policy import greedy_actions
from spikeverse.rl.evaluation import evaluate
from spikeverse.rl.rstdp import Learner, RSTDPConfig, window_eligibility
from spikeverse.snn.plasticity import RSTDPState, Traces

SMALL = CartPoleSNN(n_per_var=4, hidden=4, motor=2, window=5)


def run_cli(capsys, *args):
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def _genome(net, w_ih, w_hm):
    return net.pack(torch.as_tensor(w_ih, dtype=torch.float64), torch.as_tensor(w_hm, dtype=torch.float64))[0]


def controller(net=CartPoleSNN(hidden=2, motor=2)):
    """A hand-wired network: hidden 0 sees the pole leaning/turning right (theta, theta_dot
    fields above the centre), hidden 1 left; hidden 0 drives the right population, 1 the left."""
    n = net.n_per_var
    w_ih = np.zeros((2, 4 * n))
    centres = np.linspace(-1, 1, n)
    for var, scale in ((2, 1.0), (3, 0.5)):
        w_ih[0, var * n:(var + 1) * n] = np.clip(centres, 0, None) * scale
        w_ih[1, var * n:(var + 1) * n] = np.clip(-centres, 0, None) * scale
    w_hm = np.zeros((2 * net.motor, 2))
    w_hm[: net.motor, 1] = 2.0
    w_hm[net.motor:, 0] = 2.0
    return net, _genome(net, w_ih, w_hm)


# --- the network ---------------------------------------------------------------------------------


def test_action_is_the_motor_population_with_more_spikes():
    net = CartPoleSNN(n_per_var=2, hidden=2, motor=3)
    obs = np.zeros((3, 4), dtype=np.float32)
    w_ih = np.full((2, 8), 2.0)  # every input spike fires every hidden neuron
    for strong, expected in ((1, 1), (0, 0)):
        w_hm = np.zeros((6, 2))
        w_hm[strong * 3:(strong + 1) * 3] = 2.0  # only population `strong` gets input
        policy = SNNPolicy(net, _genome(net, w_ih, w_hm))
        q = policy.q_values(torch.from_numpy(obs))
        assert q.shape == (3, 2) and q.dtype == torch.float32
        assert (q[:, strong] > 0).all() and (q[:, 1 - strong] == 0).all()
        assert greedy_actions(policy, obs).tolist() == [expected] * 3
    silent = SNNPolicy(net, _genome(net, w_ih, np.zeros((6, 2))))
    assert silent.q_values(torch.from_numpy(obs)).sum() == 0
    assert greedy_actions(silent, obs).tolist() == [0, 0, 0]  # a tie is "left", as argmax takes it
    assert decide(torch.tensor([[3.0, 3.0], [2.0, 5.0], [5.0, 2.0]])).tolist() == [0, 1, 0]


def test_genome_weights_round_trip_and_bad_genomes():
    net = CartPoleSNN(hidden=5, motor=3)
    assert net.n_params == 5 * 80 + 6 * 5
    g = np.random.default_rng(0).normal(size=net.n_params)
    w_ih, w_hm = net.unpack(g)
    assert w_ih.shape == (1, 5, 80) and w_hm.shape == (1, 6, 5)
    assert w_ih[0, 1, 2] == quantize(torch.tensor(g[1 * 80 + 2])) and w_hm[0, 4, 3] == quantize(torch.tensor(g[400 + 4 * 5 + 3]))
    back = net.pack(w_ih, w_hm)
    np.testing.assert_array_equal(back[0], quantize(torch.from_numpy(g)).numpy())
    np.testing.assert_array_equal(net.pack(*net.unpack(back)), back)  # exact on the grid
    assert np.abs(back[0] - g).max() <= 2.0 ** -25
    with pytest.raises(SpikeverseError, match="genes"):
        net.unpack(g[:-1])
    with pytest.raises(SpikeverseError, match="NaN"):
        net.unpack(np.full(net.n_params, np.nan))


def test_lif_layer_is_lif_step():
    net = CartPoleSNN()
    current = torch.from_numpy(np.random.default_rng(1).normal(0.3, 0.8, size=(7, 20, 16)))
    out = net._lif(current)
    assert torch.equal(out, net._lif_reference(current)) and 0 < out.mean() < 1


def test_batched_population_equals_one_individual_at_a_time():
    net = CartPoleSNN(hidden=8, motor=3, init_std=1.0)
    rng = np.random.default_rng(0)
    genomes = np.stack([net.initial_genome(rng) for _ in range(6)])
    starts = episode_starts(rng, 6)
    batch = net.play(genomes, starts)
    alone = [int(net.play(genomes[i:i + 1], starts[i:i + 1])[0]) for i in range(6)]
    assert batch.tolist() == alone and len(set(alone)) > 1
    obs = rng.uniform(-0.5, 0.5, size=(6, 4)).astype(np.float32)
    w_ih, w_hm = net.unpack(genomes)
    together = net.counts(obs, w_ih, w_hm)
    for i in range(6):
        assert torch.equal(together[i], net.counts(obs[i:i + 1], w_ih[i:i + 1], w_hm[i:i + 1])[0])
        assert torch.equal(together[i], SNNPolicy(net, genomes[i]).q_values(torch.from_numpy(obs[i:i + 1]))[0].double())


def test_cartpole_batch_is_gymnasiums_cartpole():
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=3)
    batch = CartPoleBatch(env.unwrapped.state[None])
    np.testing.assert_array_equal(batch.obs()[0], obs)
    rng = np.random.default_rng(0)
    for _ in range(200):
        a = int(rng.integers(2))
        obs, _, terminated, _, _ = env.step(a)
        batch.step(np.array([a]))
        np.testing.assert_array_equal(batch.obs()[0], obs)
        assert bool(batch.done[0]) == terminated
        if terminated:
            break
    assert terminated


def test_episode_length_is_the_evaluation_protocols_score():
    net, genome = controller()
    policy = SNNPolicy(net, genome)
    res = evaluate(policy, "CartPole-v1", episodes=3, epsilon=0.0, seed=0)
    starts = []
    env = gym.make("CartPole-v1")
    for e in range(3):  # the protocol's start states (rl/evaluation.py seeds episode e from (seed, e))
        env.reset(seed=int(np.random.default_rng([0, e]).integers(2**31)))
        starts.append(env.unwrapped.state.copy())
    lengths = net.play(np.repeat(genome[None], 3, 0), np.array(starts))
    assert lengths.tolist() == res.lengths and min(res.lengths) > 100  # the hand-wired network balances


# --- the evolution strategy ----------------------------------------------------------------------


def test_centered_ranks():
    np.testing.assert_allclose(centered_ranks([10, 30, 20]), [-0.5, 0.5, 0.0])
    np.testing.assert_allclose(centered_ranks([5, 5, 1, 9]), [0.0, 0.0, -0.5, 0.5])  # ties share
    with pytest.raises(SpikeverseError):
        centered_ranks([1.0])


def test_es_climbs_a_quadratic():
    target = np.linspace(-1, 1, 20)
    cfg = ESConfig(population=16, sigma=0.1, lr=0.05)
    theta, adam = np.zeros(20), Adam.zeros(20)
    fitness = lambda x: -((x - target) ** 2).sum(-1)  # noqa: E731
    noise, genomes = population(theta, cfg, 1)
    grad = es_gradient(noise, fitness(genomes), cfg.sigma)
    true = 2 * (target - theta)
    assert grad @ true / (np.linalg.norm(grad) * np.linalg.norm(true)) > 0.3  # uphill
    np.testing.assert_allclose(genomes[:8] + genomes[8:], np.broadcast_to(2 * theta, (8, 20)))  # antithetic pairs
    for g in range(1, 201):
        noise, genomes = population(theta, cfg, g)
        theta = adam.step(theta, es_gradient(noise, fitness(genomes), cfg.sigma), cfg.lr)
    assert np.linalg.norm(theta - target) < 0.05 * np.linalg.norm(target)


def _tiny(**kw):
    base = dict(population=4, generations=3, episodes=2, eval_episodes=2, confirm_episodes=2, max_steps=40,
                target=None, network=SMALL, sigma=0.5, lr=0.2)
    return ESConfig(**{**base, **kw})


def _csv(path):
    """A CSV file's rows without the wall_s column."""
    with open(path) as f:
        return [{k: v for k, v in r.items() if k != "wall_s"} for r in csv.DictReader(f)]


def _rows(run_dir):
    return _csv(run_dir / "generations.csv")


def test_es_same_run_for_one_and_two_workers(tmp_path):
    cfg = _tiny()
    with make_executor("local", 1) as one:
        a = run_es(cfg, tmp_path / "one", one)
    with make_executor("local", 2) as two:
        b = run_es(cfg, tmp_path / "two", two)
    assert a["generations"] == b["generations"] == 3
    rows = _rows(tmp_path / "one")
    assert rows == _rows(tmp_path / "two") and len(rows) == 3
    assert len({r["mean"] for r in rows}) > 1  # the population changes
    ta, _ = load_checkpoint(tmp_path / "one")
    tb, _ = load_checkpoint(tmp_path / "two")
    assert torch.equal(ta["es.theta"], tb["es.theta"])


class _Stop(Exception):
    pass


def test_es_resume_after_interruption_repeats_the_run(tmp_path):
    cfg = _tiny(generations=4)
    ex = make_executor("local", 1)
    run_es(cfg, tmp_path / "whole", ex)

    def stop_after_2(row):
        if row["generation"] == 2:
            raise _Stop

    with pytest.raises(_Stop):
        run_es(cfg, tmp_path / "cut", ex, on_generation=stop_after_2)
    assert len(_rows(tmp_path / "cut")) == 2
    seen = []
    summary = run_es(cfg, tmp_path / "cut", ex, on_generation=lambda r: seen.append(r["generation"]))
    assert seen == [3, 4] and summary["generations"] == 4
    assert _rows(tmp_path / "cut") == _rows(tmp_path / "whole")
    individuals = _csv(tmp_path / "cut" / "individuals.csv")
    assert individuals == _csv(tmp_path / "whole" / "individuals.csv")
    assert len(individuals) == 4 * cfg.population
    for row in _rows(tmp_path / "cut"):  # generations.csv summarises individuals.csv
        fit = [float(r["fitness"]) for r in individuals if r["generation"] == row["generation"]]
        assert float(row["best"]) == pytest.approx(max(fit)) and float(row["mean"]) == pytest.approx(np.mean(fit))
    whole, _ = load_checkpoint(tmp_path / "whole")
    cut, meta = load_checkpoint(tmp_path / "cut")
    for k in ("es.theta", "es.adam_m", "es.adam_v", "weights"):
        assert torch.equal(whole[k], cut[k]), k
    assert meta["adam_t"] == 4
    assert run_es(_tiny(generations=5), tmp_path / "cut", ex)["generations"] == 5  # a larger budget goes on


def test_es_stops_at_the_target_and_keeps_the_solving_weights(tmp_path):
    cfg = _tiny(target=1.0, generations=10)  # every episode lasts >= 1 step
    summary = run_es(cfg, tmp_path / "r", make_executor("local", 1))
    assert summary["solved_generation"] == 1 and summary["generations"] == 1
    tensors, meta = load_checkpoint(tmp_path / "r", kind="cartpole_snn")
    initial = SMALL.initial_genome(np.random.default_rng(derive_seed(cfg.seed, 0, "init")))
    np.testing.assert_array_equal(tensors["weights"].numpy(), quantize(torch.from_numpy(initial)).numpy())
    assert _rows(tmp_path / "r")[0]["confirm"] != ""
    policy, meta = load_policy(tmp_path / "r")
    assert isinstance(policy, SNNPolicy) and meta["method"] == "es"


def test_es_refuses_foreign_or_other_run_dirs(tmp_path, capsys):
    ex = make_executor("local", 1)
    run_es(_tiny(generations=1), tmp_path / "es", ex)
    with pytest.raises(SpikeverseError, match="other options"):
        run_es(_tiny(generations=1, sigma=0.3), tmp_path / "es", ex)
    rc, _, _ = run_cli(capsys, "train", "--env", "Taxi-v3", "--steps", 5, "--out", tmp_path / "taxi")
    assert rc == 0
    with pytest.raises(SpikeverseError, match="'tabular' run"):
        run_es(_tiny(generations=1), tmp_path / "taxi", ex)


@pytest.mark.parametrize("kw, message", [(dict(sigma=-0.1), "sigma"), (dict(population=1), "population"),
                                         (dict(population=5), "even"), (dict(lr=0), "lr"),
                                         (dict(episodes=0), "episodes"), (dict(max_steps=501), "max_steps")])
def test_es_bad_options(kw, message):
    with pytest.raises(SpikeverseError, match=message) as e:
        ESConfig(**kw)
    assert "\n" not in str(e.value)


# --- R-STDP --------------------------------------------------------------------------------------


def test_window_eligibility_is_the_rule_step_by_step():
    cfg = RSTDPConfig()
    rule = cfg.rule()
    g = torch.Generator().manual_seed(0)
    w = torch.rand(6, 9, dtype=torch.float64, generator=g) * 0.1
    pre = (torch.rand(20, 9, generator=g, dtype=torch.float64) < 0.3).double()
    post = (torch.rand(20, 6, generator=g, dtype=torch.float64) < 0.3).double()
    state = RSTDPState(Traces(torch.rand(9, dtype=torch.float64), torch.rand(6, dtype=torch.float64)),
                       torch.randn(6, 9, dtype=torch.float64, generator=g) * 0.01)
    looped, w_loop = state, w
    for k in range(20):
        w_loop, looped = rule.step(w_loop, pre[k], post[k], 0.0, looped)
    closed = window_eligibility(rule, state, pre, post)
    assert torch.equal(w_loop, w)
    for a, b in ((looped.eligibility, closed.eligibility), (looped.traces.pre, closed.traces.pre),
                 (looped.traces.post, closed.traces.post)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("reward, pre_step, post_step, sign", [(1.0, 5, 5, 1), (-1.0, 5, 5, -1), (1.0, 5, 8, 1),
                                                                (1.0, 9, 3, -1), (-1.0, 9, 3, 1)])
def test_reward_times_pairing_changes_the_eligible_synapse(reward, pre_step, post_step, sign):
    """+1 after a causal pre -> post pairing potentiates that synapse, -1 depresses it (and the
    reverse for post -> pre); synapses without a pairing, or onto the other population, stay."""
    net = CartPoleSNN(n_per_var=2, hidden=2, motor=1, window=12)
    cfg = RSTDPConfig(network=net, tau_e=20.0, eta=1.0)
    w0 = torch.full((2, 2), 0.05, dtype=torch.float64)
    learner = Learner(cfg, torch.zeros(2, 8, dtype=torch.float64), w0.clone())
    hidden, motor = torch.zeros(12, 2, dtype=torch.float64), torch.zeros(12, 2, dtype=torch.float64)
    hidden[pre_step, 0] = 1  # hidden 0 fires once, hidden 1 is silent
    motor[post_step, 0] = 1  # the left neuron (population of action 0) fires once ...
    motor[post_step, 1] = 1  # ... and so does the right one, which did not act
    state = learner.window_update(learner.rule.init_state(learner.w_hm), hidden, motor)
    assert torch.equal(learner.w_hm, w0)  # no reward yet: the window only builds eligibility
    learner.reward_update(state, action=0, reward=reward)
    dw = learner.w_hm - w0
    assert torch.sign(dw[0, 0]).item() == sign and abs(dw[0, 0].item()) > 1e-4
    assert dw[0, 1] == 0 and (dw[1] == 0).all()  # no pairing / not the acting population


def test_rstdp_trains_resumes_and_evaluates_through_the_cli(tmp_path, capsys):
    d, whole = tmp_path / "rstdp", tmp_path / "whole"
    args = ["train", "--env", "CartPole-v1", "--agent", "rstdp", "--no-progress", "--json", "--eval-every", 2]
    rc, out, _ = run_cli(capsys, *args, "--steps", 4, "--out", d)
    assert rc == 0
    first = json.loads(out)
    assert first["agent"] == "rstdp" and first["episodes"] == 4 and first["resumed_from"] is None
    rc, out, _ = run_cli(capsys, *args, "--steps", 6, "--out", d)  # a larger budget goes on
    assert rc == 0 and json.loads(out)["resumed_from"] == 4
    rc, out, _ = run_cli(capsys, *args, "--steps", 6, "--out", whole)
    assert rc == 0
    rows = _csv(d / "metrics.csv")
    assert [int(r["episode"]) for r in rows] == [1, 2, 3, 4, 5, 6] and rows == _csv(whole / "metrics.csv")
    assert _csv(d / "evals.csv") == _csv(whole / "evals.csv")
    resumed, meta = load_checkpoint(d, kind="cartpole_snn")
    straight, _ = load_checkpoint(whole)
    for k in ("rstdp.w_hm", "weights"):
        assert torch.equal(resumed[k], straight[k]), k
    assert meta["method"] == "rstdp" and not torch.equal(resumed["rstdp.w_hm"], torch.zeros(1))
    rc, out, _ = run_cli(capsys, "evaluate", d, "--episodes", 3, "--epsilon", 0, "--json")
    assert rc == 0
    res = json.loads(out)
    assert res["env"] == "CartPole-v1" and len(res["scores"]) == 3 and res["agent"] == "cartpole_snn"
    policy, _ = load_cartpole_snn(d)
    assert policy.net.hidden == RSTDPConfig().network.hidden


@pytest.mark.parametrize("args, message", [
    (["--env", "MountainCar-v0"], "CartPole-v1 only"),
    (["--lr", "-1"], "eta"),
    (["--steps", "0"], "episodes"),
])
def test_rstdp_bad_input_one_line_exit_2(tmp_path, capsys, args, message):
    rc, out, err = run_cli(capsys, "train", "--agent", "rstdp", "--out", tmp_path / "x", "--no-progress", *args)
    assert rc == 2 and message in err and err.count("\n") == 1


def test_rstdp_refuses_another_agents_run_dir(tmp_path, capsys):
    run_es(_tiny(generations=1), tmp_path / "es", make_executor("local", 1))
    rc, _, err = run_cli(capsys, "train", "--agent", "rstdp", "--steps", 1, "--out", tmp_path / "es", "--no-progress")
    assert rc == 2 and "use another --out" in err


# --- the benchmark target --------------------------------------------------------------------------


@pytest.mark.slow
def test_es_reaches_475_over_100_episodes(tmp_path):
    with make_executor("local", 2) as ex:
        summary = run_es(ESConfig(seed=0), tmp_path / "es", ex)
    assert summary["solved_generation"] is not None
    policy, _ = load_policy(tmp_path / "es")
    assert evaluate(policy, "CartPole-v1", episodes=100, epsilon=0.0).mean >= 475


def test_evolve_method_es_runs_resumes_and_refuses_the_wrong_env(tmp_path, capsys):
    from spikeverse.cli.app import main

    out = tmp_path / "es"
    args = ["evolve", "--env", "CartPole-v1", "--method", "es", "--population", "4", "--out", str(out), "--json"]
    assert main(args + ["--generations", "1"]) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert first["method"] == "es" and first["generations"] == 1
    assert main(args + ["--generations", "2"]) == 0  # continues from generation 1
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["generations"] == 2
    assert (out / "generations.csv").read_text().count("\n") == 3  # header + 2 generations
    assert main(["evolve", "--env", "MountainCar-v0", "--method", "es", "--out", str(tmp_path / "x")]) == 2
    assert "CartPole-v1" in capsys.readouterr().err


@pytest.mark.slow
def test_rstdp_balances_far_longer_than_random(tmp_path, capsys):
    rc, _, err = run_cli(capsys, "train", "--env", "CartPole-v1", "--agent", "rstdp", "--no-progress",
                         "--out", tmp_path / "r")
    assert rc == 0, err
    policy, _ = load_policy(tmp_path / "r")
    learned = evaluate(policy, "CartPole-v1", episodes=100, epsilon=0.0).mean
    chance = evaluate(policy, "CartPole-v1", episodes=100, epsilon=1.0).mean  # the random policy, about 20
    assert learned >= 5 * chance
