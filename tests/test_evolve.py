"""`spikeverse evolve` (seed 002 sec. 3.3): the Mountain Car SNN's fitness, the GA's DEAP
operators, determinism for any number of workers (local processes, Ray), resume, CLI errors
and figures."""

import csv
import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from spikeverse.cli.app import main
from spikeverse.errors import SpikeverseError
from spikeverse.evo import make_executor
from spikeverse.evo.ga import GAConfig, load_run, next_generation, run_ga
from spikeverse.models.mountaincar_snn import MountainCarSNN, decide

SMALL = ["--population", 8, "--target", 1.0]  # a target above the goal: the budget decides the end


pytestmark = pytest.mark.usefixtures("one_thread")


def run_cli(capsys, *args):
    rc = main(["evolve", *[str(a) for a in args]])
    out, err = capsys.readouterr()
    return rc, out, err


def rows(path, drop=("wall_s",)):
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if k not in drop} for r in csv.DictReader(f)]


def velocity_policy(net: MountainCarSNN) -> np.ndarray:
    """A hand-wired genome (in genome units, laid out as documented): hidden 0 fires for the
    velocity bins >= 16 and drives "right", hidden 1 for the others and drives "left" (push
    along the velocity, left at rest)."""
    w_in = np.zeros((net.n_inputs, net.hidden))
    w_out = np.zeros((net.hidden, 3))
    fast = np.arange(net.bins) >= net.bins // 2 + 1
    w_in[net.bins:, 0] = np.where(fast, 1.0, -1.0)
    w_in[net.bins:, 1] = np.where(fast, -1.0, 1.0)
    w_out[0, 2] = w_out[1, 0] = 2.0
    return np.concatenate([w_in.ravel(), w_out.ravel()])[None]


# --- the network and its fitness ----------------------------------------------------------------


def test_most_spikes_wins_and_ties_follow_the_rule():
    counts = torch.tensor([[0, 0, 0], [3, 3, 1], [1, 2, 2], [5, 1, 1], [1, 4, 2], [2, 0, 2]])
    assert decide(counts).tolist() == [2, 1, 2, 0, 1, 2]  # default: ties to the highest index
    assert decide(counts, "left").tolist() == [0, 0, 1, 0, 1, 0]
    assert decide(counts, "none").tolist() == [1, 1, 1, 0, 1, 1]  # L2L's rule


def test_genome_layout_round_trips():
    net = MountainCarSNN()
    g = net.initial_population(np.random.default_rng(0), 3)
    assert g.shape == (3, 60 * 5 + 5 * 3) == (3, net.n_params)
    w_in, w_out = net.unpack(g)
    assert w_in.shape == (3, 60, 5) and w_out.shape == (3, 5, 3)
    assert w_in[1, 7, 2] == g[1, 7 * 5 + 2] and w_out[2, 4, 1] == g[2, 300 + 4 * 3 + 1]
    assert np.array_equal(net.pack(w_in, w_out), g)
    with pytest.raises(SpikeverseError, match="315 genes"):
        net.unpack(np.zeros((2, 10)))


@pytest.mark.parametrize("neuron, dt", [("lif", None), ("iaf_psc_alpha", 0.5)])  # alpha: 40 steps a window
def test_fitness_is_the_max_position_of_a_hand_rolled_110_step_episode(neuron, dt):
    """Each step: one 20 ms window for the observation, most spikes wins (ties to the highest
    index), env.step; fitness = the highest position after a step, at most 110 steps."""
    net = MountainCarSNN(neuron=neuron, dt=dt)
    genomes = np.concatenate([velocity_policy(net), net.initial_population(np.random.default_rng(3), 2)])
    keys = [(0, 1, i) for i in range(len(genomes))]
    envs = [gym.make("MountainCar-v0") for _ in genomes]
    obs = np.stack([env.reset(seed=net.reset_seed(*k))[0] for env, k in zip(envs, keys)])
    best, steps, alive = np.full(len(genomes), -np.inf), np.zeros(len(genomes), int), np.ones(len(genomes), bool)
    for _ in range(110):
        counts = net.window_counts(genomes, obs)[0].tolist()  # all genomes in lockstep
        for b, env in enumerate(envs):
            if alive[b]:
                action = max(i for i, c in enumerate(counts[b]) if c == max(counts[b]))
                obs[b], _, terminated, truncated, _ = env.step(action)
                best[b], steps[b] = max(best[b], float(obs[b][0])), steps[b] + 1
                alive[b] = not (terminated or truncated)
    assert net.fitness(genomes, keys) == best.tolist()
    assert best[0] >= 0.5 and steps[0] < 110  # the velocity policy reaches the goal
    assert 110 in steps[1:]  # a random network does not: the episode is cut at 110 steps


def test_start_states_follow_the_start_mode():
    keys = [(0, 1, 0), (0, 1, 1), (0, 2, 0), (1, 1, 0)]
    seeds = {m: [MountainCarSNN(start=m).reset_seed(*k) for k in keys] for m in ("fixed", "generation", "individual")}
    assert len(set(seeds["fixed"][:3])) == 1 and seeds["fixed"][3] != seeds["fixed"][0]
    assert seeds["generation"][0] == seeds["generation"][1] != seeds["generation"][2]
    assert len(set(seeds["individual"])) == 4


def test_multi_start_fitness_is_the_mean_over_distinct_start_states():
    net = MountainCarSNN(start="generation", episodes=3)
    one = MountainCarSNN(start="generation")
    genomes = np.concatenate([velocity_policy(net), net.initial_population(np.random.default_rng(5), 3)])
    keys = [(0, 2, i) for i in range(len(genomes))]
    seeds = [net.reset_seed(0, 2, 0, episode=e) for e in range(3)]
    assert len(set(seeds)) == 3 and seeds[0] == one.reset_seed(0, 2, 0)  # episode 0 is the one-start state
    per_start = np.stack([one.rollout(genomes, [s] * len(genomes))["fitness"] for s in seeds], axis=1)
    assert net.fitness(genomes, keys) == pytest.approx(per_start.mean(1).tolist(), abs=0)
    starts = [gym.make("MountainCar-v0").reset(seed=s)[0][0] for s in seeds]
    assert len(set(starts)) == 3  # three different start positions
    assert per_start[0].min() >= 0.5  # the velocity policy reaches the goal from each of them


# --- the genetic algorithm ---------------------------------------------------------------------


def test_the_ga_uses_deaps_operators_with_seed_002s_parameters(monkeypatch):
    import deap.algorithms
    import deap.tools

    calls = {}

    def spy(module, name):
        original = getattr(module, name)

        def wrapper(*args, **kwargs):
            calls.setdefault(name, []).append(kwargs or args[2:])
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)

    for name in ("selTournament", "cxBlend", "mutGaussian"):
        spy(deap.tools, name)
    spy(deap.algorithms, "varAnd")
    pop = np.random.default_rng(0).normal(size=(32, 20))
    fit = np.arange(32.0)
    cfg = GAConfig(elite=2)
    nxt = next_generation(pop, fit, cfg, generation=2)
    assert calls["selTournament"] == [{"tournsize": 4}]
    assert calls["varAnd"] == [(0.7, 0.7)]  # crossover and mutation probabilities
    assert all(kw == {"alpha": 0.5} for kw in calls["cxBlend"]) and len(calls["cxBlend"]) > 5
    assert all(kw == {"mu": 0.0, "sigma": 1.0, "indpb": 0.05} for kw in calls["mutGaussian"])
    assert 10 < len(calls["mutGaussian"]) < 30  # about 0.7 x 30
    assert nxt.shape == pop.shape
    assert np.array_equal(nxt[:2], pop[[31, 30]])  # the elite, best first, unchanged
    assert np.array_equal(next_generation(pop, fit, cfg, generation=2), nxt)  # seeded from (seed, generation)
    assert not np.array_equal(next_generation(pop, fit, cfg, generation=3), nxt)


def test_the_variation_leaves_pythons_random_state_alone():
    import random

    random.seed(123)
    before = random.random()
    random.seed(123)
    next_generation(np.zeros((8, 4)), np.zeros(8), GAConfig(), generation=2)
    assert random.random() == before


def test_same_seed_same_run_for_one_and_two_workers(tmp_path, capsys):
    for w in (1, 2):
        rc, out, _ = run_cli(capsys, *SMALL, "--generations", 3, "--seed", 4, "--workers", w,
                             "--out", tmp_path / f"w{w}", "--json")
        assert rc == 0
    one, two = tmp_path / "w1", tmp_path / "w2"
    assert rows(one / "generations.csv") == rows(two / "generations.csv")
    assert rows(one / "individuals.csv") == rows(two / "individuals.csv")
    assert len(rows(one / "individuals.csv")) == 3 * 8
    assert np.array_equal(load_run(one)[1].population, load_run(two)[1].population)


def test_resume_reproduces_an_uninterrupted_run(tmp_path, capsys):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert run_cli(capsys, *SMALL, "--generations", 4, "--out", straight)[0] == 0
    assert run_cli(capsys, *SMALL, "--generations", 2, "--out", resumed)[0] == 0
    rc, out, _ = run_cli(capsys, *SMALL, "--generations", 4, "--out", resumed, "--json")
    assert rc == 0
    summary = json.loads(out)
    assert {"best_fitness", "generations", "solved_generation", "wall_s"} <= set(summary)
    assert summary["generations"] == 4 and summary["solved_generation"] is None
    for name in ("generations.csv", "individuals.csv"):
        assert rows(straight / name) == rows(resumed / name)
    a, b = load_run(straight)[1], load_run(resumed)[1]
    assert np.array_equal(a.population, b.population) and np.array_equal(a.best, b.best)
    assert [int(r["generation"]) for r in rows(resumed / "generations.csv")] == [1, 2, 3, 4]


def test_a_run_killed_mid_generation_resumes_from_the_last_finished_one(tmp_path):
    net, cfg = MountainCarSNN(), GAConfig(population=6, generations=3, seed=2, target=None)

    def interrupt(g, fitness):
        if g == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_ga(net, cfg, "MountainCar-v0", tmp_path / "a", make_executor(), on_generation=interrupt)
    assert load_run(tmp_path / "a")[1].generation == 2
    run_ga(net, cfg, "MountainCar-v0", tmp_path / "a", make_executor())
    run_ga(net, cfg, "MountainCar-v0", tmp_path / "b", make_executor())
    assert rows(tmp_path / "a" / "individuals.csv") == rows(tmp_path / "b" / "individuals.csv")


def test_a_solved_run_stops_and_reports_its_generation(tmp_path, capsys):
    rc, out, _ = run_cli(capsys, "--population", 8, "--generations", 5, "--target", -1.0, "--out", tmp_path, "--json")
    assert rc == 0
    summary = json.loads(out)
    assert summary["solved_generation"] == 1 == summary["generations"] and summary["best_fitness"] >= -1.0
    assert len(rows(tmp_path / "generations.csv")) == 1


def test_resume_with_other_options_is_refused(tmp_path, capsys):
    assert run_cli(capsys, *SMALL, "--generations", 1, "--out", tmp_path)[0] == 0
    rc, _, err = run_cli(capsys, *SMALL, "--generations", 2, "--hidden", 4, "--out", tmp_path)
    assert rc == 2 and "another evolve run" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--env", "CartPole-v1"], "MountainCar-v0 only"),
        (["--method", "cmaes"], "unknown method"),
        (["--population", 3], "--population"),
        (["--generations", 0], "--generations"),
        (["--workers", 0], "--workers"),
        (["--elite", 32], "--elite"),
        (["--neuron", "hh"], "neuron model"),
        (["--executor", "dask"], "unknown executor"),
        (["--hidden", 0], "--hidden"),
        (["--episodes", 0], "--episodes"),
        (["--start", "random"], "unknown start mode"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(tmp_path, capsys, args, message):
    rc, _, err = run_cli(capsys, *args, "--out", tmp_path)
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1


def test_plot_writes_the_three_figures(tmp_path, capsys):
    assert run_cli(capsys, "--population", 4, "--generations", 2, "--target", 1.0, "--out", tmp_path, "--plot")[0] == 0
    for name in ("fitness.png", "output_heatmaps.png", "episode.png"):
        assert (tmp_path / "figures" / name).stat().st_size > 10_000


# --- executors ---------------------------------------------------------------------------------


def test_ray_missing_is_a_one_line_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(SpikeverseError, match=r"pip install 'spikeverse\[ray\]'"):
        make_executor("ray", 2)


@pytest.mark.ray  # a local Ray of 2 CPUs, about 10 s; skipped without the ray extra
def test_ray_gives_the_same_run_as_local(tmp_path, capsys, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    for ex in ("local", "ray"):
        rc, _, err = run_cli(capsys, *SMALL, "--generations", 2, "--workers", 2, "--executor", ex,
                             "--out", tmp_path / ex)
        assert rc == 0, err
    assert rows(tmp_path / "local" / "individuals.csv") == rows(tmp_path / "ray" / "individuals.csv")


@pytest.mark.slow
def test_seed_0_reaches_the_goal_within_20_generations(tmp_path, capsys):
    rc, out, _ = run_cli(capsys, "--seed", 0, "--generations", 20, "--out", tmp_path, "--json")
    summary = json.loads(out)
    assert rc == 0 and summary["best_fitness"] >= 0.5 and summary["solved_generation"] <= 20


def test_episodes_and_start_reach_the_run_config(tmp_path, capsys):
    import yaml

    assert run_cli(capsys, "--population", 4, "--generations", 1, "--episodes", 2, "--start", "individual",
                   "--out", tmp_path / "ga")[0] == 0
    net = yaml.safe_load((tmp_path / "ga" / "config.yaml").read_text())["network"]
    assert net["episodes"] == 2 and net["start"] == "individual"
    assert run_cli(capsys, "--env", "CartPole-v1", "--method", "es", "--population", 4, "--generations", 1,
                   "--episodes", 2, "--out", tmp_path / "es")[0] == 0
    assert yaml.safe_load((tmp_path / "es" / "config.yaml").read_text())["es"]["episodes"] == 2


def test_an_evolved_network_plays_through_evaluate(tmp_path, capsys):
    from spikeverse.agents import load_policy
    from spikeverse.models.mountaincar_snn import MountainCarPolicy
    from spikeverse.policy import greedy_actions
    from spikeverse.rl.evaluation import evaluate

    assert run_cli(capsys, *SMALL, "--generations", 1, "--out", tmp_path, "--start", "individual")[0] == 0
    policy, meta = load_policy(tmp_path)
    assert meta["env_id"] == "MountainCar-v0"
    best = load_run(tmp_path)[1].best
    obs = np.random.default_rng(0).uniform([-1.2, -0.07], [0.6, 0.07], size=(64, 2)).astype(np.float32)
    expected = decide(policy.net.window_counts(best[None].repeat(64, 0), obs)[0], policy.net.tie).numpy()
    assert np.array_equal(greedy_actions(policy, obs), expected)  # the action the GA scored, window by window
    rc, out, _ = main(["evaluate", str(tmp_path), "--episodes", "2", "--json"]), *capsys.readouterr()
    assert rc == 0 and json.loads(out)["env"] == "MountainCar-v0"
    hand = MountainCarPolicy(MountainCarSNN(), velocity_policy(MountainCarSNN())[0])
    res = evaluate(hand, "MountainCar-v0", episodes=10, epsilon=0.0)
    assert max(res.lengths) < 200  # pushing along the velocity reaches the goal from every start
