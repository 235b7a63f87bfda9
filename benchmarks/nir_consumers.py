"""NIR export (issue 17): do other simulators run spikeverse's agents as spikeverse does?

Trains one agent of every spiking kind (seed 100, a seed no default was tuned on; each with its
defaults): a CartPole DQN converted by the naive, tan and fast methods, a CartPole DSQN, the ES
and R-STDP CartPole SNNs, the GA Mountain Car SNN. To check the importers on Conv2d and Flatten
too, three MinAtar-shaped networks with random weights (not trained agents: the MinAtar CNN,
converted by tan and fast with statistics of 2,000 frames of random play, and a DSQN whose layers
are calibrated to fire at 0.1) go through the same measurements; the other simulators run those
one observation at a time (their importers flatten a batch along with the rest, see
``benchmarks/peer_nir.py``). Each is exported with ``spikeverse export
--format nir`` (whose own check, on 1,000 frames of the agent's play, is kept), then on
``--frames`` frames of the agent's own play (epsilon 0.05, 4 episodes, seed 1; the graph's input
of every step computed once by spikeverse's encoder and given to every simulator alike):

- the agent itself (its spikeverse network: reset by subtraction, V(0), v >= V_thr, ...);
- the round trip: the .nir file under spikeverse's semantics (``io.nir.load``);
- the graph alone under NIR's semantics: spikeverse's hard-reset re-simulation
  (``semantics="nir"``: reset to v_reset, start at rest, v > v_threshold);
- snnTorch's and Norse's own NIR importers (``benchmarks/peer_nir.py`` run by ``--peer-python``,
  a throwaway venv: ``python3 -m venv /tmp/nirpeer && /tmp/nirpeer/bin/pip install torch==2.13.0
  && /tmp/nirpeer/bin/pip install snntorch==1.0.0 nir nirtorch && /tmp/nirpeer/bin/pip install
  --no-deps norse==1.1.0``), Norse with dt = 1e-4 (snnTorch's importer fixes it).

Agreement = the fraction of frames on which two of these take the same greedy action (after the
metadata's readout and tie rule). "vs agent" is what a user of the other simulator gets;
"vs re-simulation" isolates the simulator from NIR's semantics: where it is 1, all of the
difference from the agent is reset semantics (and the start and spike test), not the simulator.
The agent and the graph alone also play 20 episodes of the evaluation protocol (epsilon 0.05).

    python benchmarks/nir_consumers.py --peer-python /tmp/nirpeer/bin/python
    python benchmarks/nir_consumers.py --report     # rewrite the markdown from the JSON alone

Agents train in benchmarks/runs/nir_consumers/ (a rerun reuses them and each finished agent's
unit JSON). Writes benchmarks/results/nir_consumers.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _results import RUNS, cli, load_unit, rewrite_reports, save_unit, write_report

NAME = "nir_consumers"
HERE = Path(__file__).parent
SEED = 100
FRAMES = 1_000
PLAY_EPISODES = 20
CHUNK = 250  # frames simulated at once
# agent -> (what trains it, the spikeverse commands; {run} is its run dir, {dqn} the DQN's)
AGENTS = {
    "naive": ("CartPole DQN converted by seed 000's method (LIF, Poisson input, T = 100)",
              [["convert", "{dqn}", "--method", "naive", "--out", "{run}"]]),
    "tan": ("CartPole DQN converted by seed 001's method (IF, reset by subtraction, T = 100, robust readout)",
            [["convert", "{dqn}", "--method", "tan", "--out", "{run}"]]),
    "fast": ("CartPole DQN converted by the fast method (QCFS, IF from V_thr/2, T = 32, membrane readout)",
             [["convert", "{dqn}", "--method", "fast", "--out", "{run}"]]),
    "dsqn": ("CartPole DSQN (LIF in the DSQN form, T = 16, hard reset)",
             [["train", "--env", "CartPole-v1", "--agent", "dsqn", "--seed", str(SEED), "--out", "{run}"]]),
    "es": ("CartPole SNN by OpenAI-ES (LIF, population-coded input, 20 steps)",
           [["evolve", "--env", "CartPole-v1", "--method", "es", "--seed", str(SEED), "--workers", "1",
             "--out", "{run}"]]),
    "rstdp": ("CartPole SNN by R-STDP (the same network)",
              [["train", "--env", "CartPole-v1", "--agent", "rstdp", "--seed", str(SEED), "--out", "{run}"]]),
    "ga": ("Mountain Car SNN by seed 002's GA (LIF, one-hot bins, 20 steps)",
           [["evolve", "--env", "MountainCar-v0", "--seed", str(SEED), "--workers", "1", "--out", "{run}"]]),
}
# random-weight MinAtar-shaped networks (importer checks on Conv2d / Flatten; not trained agents)
RANDOM_MINATAR = {
    "minatar-tan": "random-weight MinAtar CNN converted by tan (T = 100)",
    "minatar-fast": "random-weight MinAtar CNN converted by fast without fine-tune (T = 32, V(0) = V_thr/2)",
    "minatar-dsqn": "random-weight MinAtar DSQN, firing calibrated to 0.1 (T = 8)",
}
MINATAR = "MinAtar/Breakout"
CONSUMERS = ("snntorch", "norse")


def random_minatar(runs: Path) -> dict[str, Path]:
    """The random-weight MinAtar-shaped agents' run directories (made once)."""
    import torch

    from spikeverse.convert import convert_ann, from_module, save_snn
    from spikeverse.convert.normalize import collect_activations
    from spikeverse.io.checkpoint import save_checkpoint
    from spikeverse.rl.config import DQNConfig
    from spikeverse.rl.dqn import network_spec
    from spikeverse.rl.networks import QNetwork
    from spikeverse.snn.config import SpikingConfig

    out = {name: runs / name for name in RANDOM_MINATAR}
    if all((runs / f"{n}.done").exists() for n in out):
        return out
    torch.manual_seed(SEED)
    ann = QNetwork(network_spec(DQNConfig.for_env(MINATAR), (4, 10, 10), 3)).eval()
    flat = from_module(ann)
    stats = collect_activations(flat, MINATAR, frames=2_000, epsilon=1.0, seed=SEED, keep_observations=True,
                                progress=False)
    for method, extra in (("tan", {}), ("fast", dict(levels=0))):
        snn, info = convert_ann(flat, MINATAR, method=method, stats=stats, **extra)
        save_snn(out[f"minatar-{method}"], snn, flat, dict(env_id=MINATAR, source={"kind": "random weights"}, **info))
    spec = network_spec(DQNConfig.for_env(MINATAR, spiking=SpikingConfig(timesteps=8)), (4, 10, 10), 3)
    net = QNetwork(spec)
    net.calibrate(stats.observations.float(), 0.1)
    out["minatar-dsqn"].mkdir(parents=True, exist_ok=True)
    save_checkpoint(out["minatar-dsqn"] / "checkpoint.safetensors",
                    {f"online.{k}": v for k, v in net.state_dict().items()},
                    {"kind": "dsqn", "network": spec.to_dict(), "env_id": MINATAR})
    for n in out:
        (runs / f"{n}.done").write_text("")
    return out


def train(runs: Path) -> dict[str, Path]:
    """Every agent's run directory, trained unless it was (a finished marker beside it)."""
    dqn = runs / "dqn"
    if not (runs / "dqn.done").exists():
        cli("train", "--env", "CartPole-v1", "--seed", str(SEED), "--out", str(dqn))
        (runs / "dqn.done").write_text("")
    out = {}
    for name, (_, commands) in AGENTS.items():
        run = runs / name
        if not (runs / f"{name}.done").exists():
            for c in commands:
                cli(*[a.format(run=run, dqn=dqn) for a in c])
            (runs / f"{name}.done").write_text("")
        out[name] = run
    return out


def export_cli(run: Path, path: Path) -> dict:
    """``spikeverse export RUN --format nir --out PATH --json`` (its warnings go to stderr)."""
    cmd = [sys.executable, "-m", "spikeverse.cli", "export", str(run), "--format", "nir", "--out", str(path), "--json"]
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if res.returncode != 0:
        raise SystemExit(f"spikeverse export {run}: {res.stderr.strip().splitlines()[-1:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def peer(python: str, sim: str, graph: Path, inputs: Path, timesteps: int, constant: bool, dt: float,
         unbatched: bool) -> dict:
    cmd = [python, str(HERE / "peer_nir.py"), "run", "--graph", str(graph), "--inputs", str(inputs), "--timesteps",
           str(timesteps), "--simulator", sim, "--dt", str(dt)] + (["--constant"] if constant else []) + \
        (["--unbatched"] if unbatched else [])
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if res.returncode != 0:
        return {"simulator": sim, "error": (res.stderr.strip().splitlines() or ["failed"])[-1][:300]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def random_play_frames(env: str, frames: int, seed: int):
    """``frames`` observations of uniformly random play (the random-weight networks' frames: their own
    play ends within a few steps)."""
    from spikeverse.envs import make
    import numpy as np

    rng, out = np.random.default_rng(seed), []
    e = make(env, training=False)
    obs, _ = e.reset(seed=seed)
    while len(out) < frames:
        out.append(obs)
        obs, _, term, trunc, _ = e.step(int(rng.integers(e.action_space.n)))
        if term or trunc:
            obs, _ = e.reset(seed=int(rng.integers(2**31)))
    e.close()
    return np.stack(out)


def measure(name: str, run: Path, runs: Path, peer_python: str | None, frames: int) -> dict:
    import torch

    from spikeverse.agents import load_policy, own_play_frames
    from spikeverse.io.nir import load
    from spikeverse.rl.evaluation import evaluate

    torch.set_num_threads(1)
    path = runs / f"{name}.nir"
    export = export_cli(run, path)
    agent, meta = load_policy(run)
    env = meta["env_id"]
    trained = name not in RANDOM_MINATAR
    obs = torch.as_tensor(own_play_frames(agent, env, frames, seed=1) if trained else
                          random_play_frames(env, frames, seed=1))
    own, alone = load(path), load(path, semantics="nir")
    if hasattr(agent, "reset_generator"):
        agent.reset_generator()  # its own Poisson draws: the same stream, in the same chunks, as own.encode's
    xs, q_agent, sums = [], [], {"spikeverse": [], "nir": []}
    with torch.no_grad():
        for i in range(0, len(obs), CHUNK):
            x, constant = own.encode(obs[i:i + CHUNK])  # one input for all simulators: Poisson draws included
            xs.append(x)
            q_agent.append(agent.q_values(obs[i:i + CHUNK]).float())
            for k, p in (("spikeverse", own), ("nir", alone)):
                sums[k].append(p.network.run(x, p.timesteps, constant).sum(0))
    x = torch.cat(xs, 0 if constant else 1)
    q_agent, sums = torch.cat(q_agent), {k: torch.cat(v) for k, v in sums.items()}
    act = {"agent": q_agent.argmax(-1), **{k: own.q_from_sums(v).argmax(-1) for k, v in sums.items()}}
    agree = lambda a, b: round(float((a == b).double().mean()), 4)  # noqa: E731
    row = {"agent": name, "env_id": env, "kind": export["agent"], "timesteps": export["timesteps"],
           "nodes": export["nodes"], "differs": export["differs"], "export_check": export["checks"],
           "frames": int(len(obs)), "frames_from": "own play" if trained else "random play",
           "round_trip_agreement": agree(act["spikeverse"], act["agent"]),
           "round_trip_max_abs_dq": float((own.q_from_sums(sums["spikeverse"]) - q_agent).abs().max()),
           "nir_semantics_agreement": agree(act["nir"], act["agent"]), "consumers": {},
           "unbatched": "Flatten" in export["nodes"].values()}
    if peer_python:
        with tempfile.TemporaryDirectory() as tmp:
            inputs = Path(tmp) / "inputs.npy"
            import numpy as np

            np.save(inputs, x.double().cpu().numpy())
            for sim in CONSUMERS:
                res = peer(peer_python, sim, path, inputs, own.timesteps, constant, own.dt, row["unbatched"])
                entry = {"simulator": res.get("simulator", sim), "notes": res.get("notes", [])}
                if "error" in res:
                    entry["error"] = res["error"]
                else:
                    s = torch.tensor(res["sums"], dtype=sums["nir"].dtype)
                    a = own.q_from_sums(s).argmax(-1)
                    entry.update(agreement_with_agent=agree(a, act["agent"]),
                                 agreement_with_resimulation=agree(a, act["nir"]),
                                 max_abs_sum_difference_vs_resimulation=float((s - sums["nir"]).abs().max()))
                row["consumers"][sim] = entry
    if not trained:  # a random network's score says nothing
        row["play"] = None
        return row
    play = {}
    for label, policy in (("agent", agent), ("nir_semantics", alone)):
        if hasattr(policy, "reset_generator"):  # Poisson input: both play from the same random stream
            policy.reset_generator()
        res = evaluate(policy, env, episodes=PLAY_EPISODES, seed=0, progress=False)
        play[label] = {"mean": round(res.mean, 2), "std": round(res.std, 2)}
    row["play"] = {"episodes": PLAY_EPISODES, "epsilon": 0.05, **play}
    return row


def _versions(peer_python: str | None) -> dict:
    from importlib.metadata import version

    out = {"nir": version("nir"), "torch": version("torch")}
    if peer_python:
        code = ("import json; from importlib.metadata import version as v; "
                "print(json.dumps({k: v(k) for k in ('snntorch', 'norse', 'nirtorch', 'nir')}))")
        res = subprocess.run([peer_python, "-c", code], capture_output=True, text=True)
        if res.returncode == 0:
            out["peer"] = json.loads(res.stdout)
    return out


def _pct(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def render(d: dict) -> str:
    lines = ["# NIR export: spikeverse's agents in other simulators", "",
             f"`{d['command']}`", "",
             f"Seed {d['seed']} for every agent (defaults, untuned seed). Agreement: fraction of up to {d['frames']} "
             "frames of each agent's own play (4 episodes, epsilon 0.05, seed 1; the random-weight networks: random "
             "play) on which two simulations take the same greedy action, all fed the same input per step. "
             "*Round trip*: the .nir file under spikeverse's semantics "
             "(node metadata). *Graph alone*: spikeverse's re-simulation under NIR's semantics (reset to v_reset, "
             "start at rest, v > v_threshold). snnTorch and Norse: their own NIR importers (Norse with dt = "
             f"{d['dt']:g}). Versions: {', '.join(f'{k} {v}' for k, v in d['versions'].items() if k != 'peer')}"
             + (f"; peer venv {', '.join(f'{k} {v}' for k, v in d['versions']['peer'].items())}"
                if "peer" in d["versions"] else "") + ".", "",
             "| agent | T | frames | round trip | graph alone vs agent | snnTorch vs agent | snnTorch vs graph alone | "
             "Norse vs agent | Norse vs graph alone | play: agent | play: graph alone |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in d["rows"]:
        cells = []
        for sim in ("snntorch", "norse"):
            c = r["consumers"].get(sim)
            if c is None:
                cells += ["not run", "not run"]
            elif "error" in c:
                cells += ["refused", "refused"]
            else:
                cells += [_pct(c["agreement_with_agent"]), _pct(c["agreement_with_resimulation"])]
        p = r["play"]
        play = f"{p['agent']['mean']:.1f} | {p['nir_semantics']['mean']:.1f}" if p else "- | -"
        lines.append(f"| {r['agent']} ({d['labels'][r['agent']]}) | {r['timesteps']} | {r['frames']} | "
                     f"{_pct(r['round_trip_agreement'])} | {_pct(r['nir_semantics_agreement'])} | " + " | ".join(cells) +
                     f" | {play} |")
    lines += ["", f"Play: mean score over {PLAY_EPISODES} episodes of the evaluation protocol (epsilon 0.05, seed 0) of "
                  "the agent and of the graph alone under NIR's semantics.",
              "", "Largest Q-value difference of the round trip, and the export's own check (1,000 frames of its "
              "own play, seed 0):", "", "| agent | round trip max abs dQ | export check: round trip | export check: "
              "graph alone |", "|---|---|---|---|"]
    for r in d["rows"]:
        c = r["export_check"]
        lines.append(f"| {r['agent']} | {r['round_trip_max_abs_dq']:.2g} | {_pct(c.get('round_trip_agreement'))} "
                     f"({c.get('frames')} frames) | {_pct(c.get('nir_semantics_agreement'))} |")
    unbatched = [r["agent"] for r in d["rows"] if r.get("unbatched")]
    if unbatched:
        lines += ["", f"{', '.join(unbatched)}: run by snnTorch and Norse one observation at a time (their importers "
                      "map NIR's Flatten, whose dims exclude the batch, to torch.nn.Flatten(0, -1), which flattens a "
                      "batch along with the rest)."]
    errors = [(r["agent"], sim, c["error"]) for r in d["rows"] for sim, c in r["consumers"].items() if "error" in c]
    if errors:
        lines += ["", "Refused by the importer:", ""]
        lines += [f"- {a}, {sim}: `{e}`" for a, sim, e in errors]
    diffs = [(r["agent"], sim, c["max_abs_sum_difference_vs_resimulation"]) for r in d["rows"]
             for sim, c in r["consumers"].items() if "error" not in c]
    if diffs:
        worst = max(x for _, _, x in diffs)
        lines += ["", f"Where an importer took the graph, its output summed over the window differs from spikeverse's "
                      f"re-simulation of the graph alone by at most {worst:.3g} (over all agents and frames)."]
    lines += ["", "What a simulator that reads only the graph computes differently (the export's warnings):", ""]
    seen = []
    for r in d["rows"]:
        for line in r["differs"]:
            if line not in seen:
                seen.append(line)
                lines.append(f"- {line} ({', '.join(x['agent'] for x in d['rows'] if line in x['differs'])})")
    return "\n".join(lines) + "\n"


REPORTS = {NAME: render}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer-python", default=None)
    ap.add_argument("--frames", type=int, default=FRAMES)
    ap.add_argument("--agents", nargs="*", default=[*AGENTS, *RANDOM_MINATAR])
    ap.add_argument("--report", action="store_true")
    args = ap.parse_args()
    if args.report:
        rewrite_reports(REPORTS)
        return
    runs = RUNS / NAME
    runs.mkdir(parents=True, exist_ok=True)
    dirs = {**train(runs), **random_minatar(runs)}
    rows = []
    for name in args.agents:
        unit = runs / f"{name}.json"
        row = load_unit(unit)
        if row is None or row.get("peer") != bool(args.peer_python) or row["frames_asked"] != args.frames:
            row = {**measure(name, dirs[name], runs, args.peer_python, args.frames), "peer": bool(args.peer_python),
                   "frames_asked": args.frames}
            save_unit(unit, row)
        print(name, {k: row[k] for k in ("round_trip_agreement", "nir_semantics_agreement")},
              {s: c.get("agreement_with_agent", c.get("error")) for s, c in row["consumers"].items()}, flush=True)
        rows.append(row)
    from spikeverse.io.nir import DT

    command = "python benchmarks/nir_consumers.py" + (" --peer-python PEER" if args.peer_python else "") + \
        (f" --frames {args.frames}" if args.frames != FRAMES else "")
    data = {"benchmark": NAME, "command": command, "seed": SEED, "frames": args.frames, "dt": DT,
            "labels": {**{k: v[0] for k, v in AGENTS.items()}, **RANDOM_MINATAR},
            "versions": _versions(args.peer_python), "rows": rows}
    write_report(NAME, data, render)
    print(f"wrote results/{NAME}.json and .md")


if __name__ == "__main__":
    sys.exit(main())
