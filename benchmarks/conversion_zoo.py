"""Conversion on DQNs trained elsewhere (issue 16): every member of the zoo (benchmarks/zoo.py),
converted by each method with `spikeverse convert --state-dict`, its agreement with the member's own
network against T in play and on state sets the conversion never saw.

The conversion collects its statistics (and the fast method its fine-tune frames) from the
member's play at seed 0, epsilon 0.05. The state sets, 2,000 states each:
- ``other seeds``: the member's own play, episodes seeded 5000 + i, epsilon 0.05;
- ``epsilon 0.3``: its play with 30% random actions (states further off its path);
- ``random``: uniformly random actions (epsilon 1);
- ``training``: states of its training replay memory (``train_states.npy``: what it learned on);
- ``other policies``: the other members' own play in the same environment.
In play: `spikeverse evaluate SNN --timesteps T` (seed 001 protocol, the member in the shadow for
the conversion rate, the member alone on the same episodes for the Welch test), 20 episodes.
The peer, SpikingJelly 2.0's converter (``RateCodingRecipe(mode='99.9%')`` calibrated on the same
15,000 frames tan collects), runs in a throwaway venv (``--peer-python``, as benchmarks/conversion.py)
through benchmarks/peer_spikingjelly.py, on the same state sets and play episodes.

    python benchmarks/conversion_zoo.py                 # every member with a model, tan and fast
    python benchmarks/conversion_zoo.py --methods spikingjelly --peer-python /tmp/sjvenv/bin/python
    python benchmarks/conversion_zoo.py --methods fast-wide      # fast with the fine-tune's wider frames and gap-tempered margin
    python benchmarks/conversion_zoo.py --methods fast-wide-replay   # fast-wide, plus the member's replay (--frames-from)
    python benchmarks/conversion_zoo.py --methods fast-wide-l8   # fast-wide quantized for T <= 8 (--levels 8)
    python benchmarks/conversion_zoo.py --methods fast-wide-l8-long   # ... its fine-tune early-stopped, up to 8 x 50,000 steps
    python benchmarks/conversion_zoo.py --methods fast-wide-l8-long-replay   # ... and the member's replay (--frames-from)
    python benchmarks/conversion_zoo.py --report        # rewrite the markdown from the JSON

Each (member, method) is kept in benchmarks/runs/conversion_zoo/ when done (a rerun skips it).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from _results import CONVERT_FLAGS, LONG_CYCLES, RESULTS, RUNS, cli, load_unit, rewrite_reports, save_unit, write_report

NAME = "conversion_zoo"
ZOO = RUNS / "zoo"
TIMESTEPS = (4, 8, 16, 32)
METHODS = ("tan", "fast", "fast-wide", "fast-wide-replay", "fast-wide-l8", "fast-wide-l8-long",
           "fast-wide-l8-long-replay")  # spikeverse's; the peer's rows are method "spikingjelly"
# each method's `spikeverse convert` flags: _results.CONVERT_FLAGS (fast-wide's epsilons 0.3 and 1 are the state
# sets' too, in other episodes); fast-wide-replay: fast-wide with --frames-from the member's replay states that the
# "training" state set does not hold (REPLAY_FILE)
REPLAY_FILE = "replay_calibration.npy"
PEER = "spikingjelly"
PROFILE_T = 8  # the T of the disagreement profile's table
STATES = 2_000
EPISODES = 20
PLAY_SEED = 9000  # the evaluation episodes: neither the collection (0) nor the state sets (5000) use them


def members() -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(ZOO.glob("*/member.json"))]


def _play_states(net, env_id: str, *, epsilon: float, seed: int, frames: int = STATES) -> torch.Tensor:
    from spikeverse.convert.normalize import collect_activations

    return collect_activations(net, env_id, frames=frames, epsilon=epsilon, seed=seed, keep_observations=True,
                               progress=False).observations.float()


def training_indices(n: int) -> np.ndarray:
    """The indices into a member's train_states.npy of its held-out "training" state set."""
    return np.random.default_rng(0).choice(n, min(STATES, n), replace=False)


def convert_flags(member: dict, method: str) -> list[str]:
    """`spikeverse convert` flags of ``method`` on ``member`` (a -replay method: its base method's and --frames-from
    the member's replay states outside the "training" set, a file written once)."""
    if not method.endswith("-replay"):
        return CONVERT_FLAGS[method]
    path = ZOO / member["name"] / REPLAY_FILE
    if not path.exists():
        train = np.load(ZOO / member["name"] / "train_states.npy")
        np.save(path, np.delete(train, training_indices(len(train)), axis=0))
    return [*CONVERT_FLAGS[method.removesuffix("-replay")], "--frames-from", str(path)]


def state_sets(member: dict, peers: list[dict]) -> dict[str, torch.Tensor]:
    """The held-out state sets of one member (see the module docstring)."""
    from spikeverse.convert import load_source

    ann, env, _ = load_source(state_dict=ZOO / member["name"] / "model.pth", env_id=member["env"])
    train = np.load(ZOO / member["name"] / "train_states.npy")
    sets = {"other seeds": _play_states(ann, env, epsilon=0.05, seed=5000),
            "epsilon 0.3": _play_states(ann, env, epsilon=0.3, seed=5000),
            "random": _play_states(ann, env, epsilon=1.0, seed=5000),
            "training": torch.as_tensor(train[training_indices(len(train))])}
    others = [p for p in peers if p["env"] == member["env"] and p["name"] != member["name"]]
    if others:
        per = STATES // len(others)
        sets["other policies"] = torch.cat([
            _play_states(load_source(state_dict=ZOO / p["name"] / "model.pth", env_id=p["env"])[0], env,
                         epsilon=0.05, seed=5000, frames=per) for p in others])
    return sets


def run_one(member: dict, method: str, peers: list[dict], runs: Path) -> dict:
    unit = runs / f"{member['name']}-{method}.json"
    snn_dir = runs / f"{member['name']}-{method}"
    if (done := load_unit(unit)) is not None:
        if "disagreement_by_q_gap" not in done["play"][0] and snn_dir.exists():  # kept before the profile existed
            done["play"] = _play(snn_dir)  # the same episodes: the same numbers, with the profile
            save_unit(unit, done)
        if "twin" not in done and snn_dir.exists():
            done["twin"] = _twin(snn_dir, state_sets(member, peers))
            save_unit(unit, done)
        return done
    from spikeverse.convert import load_ann, load_snn
    from spikeverse.convert.timesteps import agreement_vs_timesteps

    conv = cli("convert", "--state-dict", str(ZOO / member["name"] / "model.pth"), "--env", member["env"],
               *convert_flags(member, method), "--timesteps", str(max(TIMESTEPS)), "--out", str(snn_dir), "--device", "cpu")
    snn, _ = load_snn(snn_dir)
    ann = load_ann(snn_dir)
    held = state_sets(member, peers)
    sets = {name: [p["agreement"] for p in agreement_vs_timesteps(snn, ann, obs, grid=TIMESTEPS, progress=False)]
            for name, obs in held.items()}
    row = dict(member=member["name"], env=member["env"], trainer=member["trainer"], method=method, play=_play(snn_dir),
               state_sets=sets, twin=_twin(snn_dir, held),
               finetune_test_agreement=(conv.get("qcfs") or {}).get("test_agreement"),
               finetune_steps=(conv.get("qcfs") or {}).get("steps"))
    save_unit(unit, row)
    return row


def _twin(snn_dir: Path, held: dict[str, torch.Tensor]) -> dict:
    """Per state set and T: the agreement of the SNN's rate twin at L = T (`convert.qcfs.rate_twin`:
    the SNN without its timing error) with the member, and of the SNN with its twin."""
    from spikeverse.convert import agreement, load_ann, load_snn
    from spikeverse.convert.qcfs import rate_twin

    snn, _ = load_snn(snn_dir)
    ann = load_ann(snn_dir)
    out = {"member": {}, "snn": {}}
    twins = {t: rate_twin(snn, t) for t in TIMESTEPS}
    for name, obs in held.items():
        out["member"][name] = [round(agreement(twins[t], ann, obs), 5) for t in TIMESTEPS]
        row = []
        for t in TIMESTEPS:
            snn.timesteps = t
            row.append(round(agreement(twins[t], snn, obs), 5))
        out["snn"][name] = row
    return out


def _play(snn_dir: Path) -> list[dict]:
    """`spikeverse evaluate SNN --timesteps T --json` at every T: conversion rate, scores, Welch p,
    energy, and where the disagreements are (the member's Q-gap profile)."""
    play = []
    for t in TIMESTEPS:
        ev = cli("evaluate", str(snn_dir), "--timesteps", str(t), "--episodes", str(EPISODES), "--seed",
                 str(PLAY_SEED), "--device", "cpu")
        play.append(dict(timesteps=t, conversion_rate=round(ev["conversion_rate"], 4), snn_mean=round(ev["mean"], 2),
                         ann_mean=round(ev["ann_mean"], 2),
                         p_value=None if ev["p_value"] is None else round(ev["p_value"], 4),
                         energy_uJ_per_decision=ev["energy_uJ_per_decision"],
                         ann_energy_uJ_per_decision=ev["ann_energy_uJ_per_decision"],
                         disagreement_by_q_gap=ev["disagreement_by_q_gap"]))
    return play


def run_peer(member: dict, peers: list[dict], runs: Path, python: str) -> dict:
    """SpikingJelly's converter on ``member`` (benchmarks/peer_spikingjelly.py in ``python``)."""
    unit = runs / f"{member['name']}-{PEER}.json"
    if (done := load_unit(unit)) is not None and "disagreement_by_q_gap" in done["play"][0]:
        return done
    import subprocess
    import tempfile

    from safetensors.torch import save_file

    from spikeverse.convert import load_source

    model = ZOO / member["name"] / "model.pth"
    ann, env, _ = load_source(state_dict=model, env_id=member["env"])
    sets = state_sets(member, peers)
    frames = {"calibration": _play_states(ann, env, epsilon=0.05, seed=0, frames=15_000)}
    frames.update({f"set{i}": obs for i, obs in enumerate(sets.values())})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "frames.safetensors"
        save_file({k: v.float().contiguous() for k, v in frames.items()}, str(path))
        cmd = [python, str(Path(__file__).with_name("peer_spikingjelly.py")), "--state-dict", str(model), "--env", env,
               "--frames", str(path), "--timesteps", ",".join(map(str, TIMESTEPS)), "--play-episodes",
               str(EPISODES), "--play-seed", str(PLAY_SEED)]
        res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"{member['name']}: the SpikingJelly peer failed: "
                         + (res.stderr.strip().splitlines() or ["no output"])[-1])
    out = json.loads(res.stdout.strip().splitlines()[-1])
    names = list(sets)
    state = {names[int(k[3:])]: [out["sets"][k][str(t)] for t in TIMESTEPS] for k in out["sets"]}
    row = dict(member=member["name"], env=member["env"], trainer=member["trainer"], method=PEER, library=out["library"],
               recipe=out["recipe"], play=[dict(p, energy_uJ_per_decision=None, ann_energy_uJ_per_decision=None)
                                           for p in out["play"]],
               state_sets={n: state[n] for n in names}, finetune_test_agreement=None)
    save_unit(unit, row)
    return row


def render(d: dict) -> str:
    ts = d["timesteps"]
    lines = ["# Conversion on DQNs trained elsewhere (issue 16)", "", f"`{d['command']}`", "",
             "Members: results/zoo.md (CleanRL-style and Stable-Baselines3 DQNs, none trained by spikeverse). "
             "Each converted by `spikeverse convert --state-dict` at the method's defaults (fast-wide: fast with "
             "`--finetune-epsilons 0.05,0.3,1 --margin-scale gap`; its fine-tune plays at epsilon 0.3 and 1 too, in "
             "other episodes, so the state sets 'epsilon 0.3' and 'random' are off its frames but not off their "
             "distribution; fast-wide-replay: fast-wide with `--frames-from` the member's 18,000 replay states that "
             "the 'training' set does not hold; fast-wide-l8: fast-wide with `--levels 8`, its fine-tune quantized at "
             "4 and 8 levels, the T it is played at, instead of 4 to 32; fast-wide-l8-long: fast-wide-l8 with "
             f"`--finetune-cycles {LONG_CYCLES}`, up to {LONG_CYCLES} cosine cycles of 50,000 steps while the "
             f"validation agreement rises; -replay: with `--frames-from` the replay states as fast-wide-replay); play: {d['episodes']} "
             f"episodes (seed {d['play_seed']}, epsilon 0.05), conversion rate = agreement with the member in "
             "the shadow; p: Welch test of the SNN's scores against the member's on the same episodes. State sets: "
             "2,000 states the conversion never saw (module docstring of benchmarks/conversion_zoo.py).", "",
             *_goal_lines(d), "",
             "## In play", "",
             "| member | method | " + " | ".join(f"T={t} rate (score, p)" for t in ts) + " | member's score |",
             "|---|---|" + "---|" * len(ts) + "---|"]
    for r in d["rows"]:
        cells = [f"{p['conversion_rate']:.3f} ({p['snn_mean']:.1f}, "
                 f"{'-' if p['p_value'] is None else format(p['p_value'], '.3f')})" for p in r["play"]]
        lines.append(f"| {r['member']} | {r['method']} | " + " | ".join(cells) + f" | {r['play'][0]['ann_mean']:.1f} |")
    lines += ["", "## Agreement on held-out state sets", "",
              "| member | method | state set | " + " | ".join(f"T={t}" for t in ts) + " |",
              "|---|---|---|" + "---|" * len(ts)]
    for r in d["rows"]:
        for name, curve in r["state_sets"].items():
            lines.append(f"| {r['member']} | {r['method']} | {name} | " + " | ".join(f"{a:.3f}" for a in curve) + " |")
    lines += ["", "## Quantization or timing: the SNN against its rate twin", "",
              "The rate twin at L = T (`convert.qcfs.rate_twin`) is the SNN with every hidden layer's output "
              "replaced by the spike count it would have under a constant input: the network the fast "
              "fine-tune trained, without the SNN's timing error. Mean over the state sets above: agreement of "
              "the SNN with the member, of the twin with the member, and of the SNN with its twin. Where the "
              "twin's is as low as the SNN's, the decisions are lost to quantization (the fine-tune), not timing.", "",
              "| member | method | " + " | ".join(f"T={t} SNN / twin / SNN=twin" for t in ts) + " |",
              "|---|---|" + "---|" * len(ts)]
    for r in d["rows"]:
        if "twin" not in r:
            continue
        snn_mean, twin_mean, same_mean = (np.mean(list(sets.values()), axis=0) for sets in
                                          (r["state_sets"], r["twin"]["member"], r["twin"]["snn"]))
        lines.append(f"| {r['member']} | {r['method']} | " + " | ".join(
            f"{snn_mean[i]:.3f} / {twin_mean[i]:.3f} / {same_mean[i]:.3f}" for i in range(len(ts))) + " |")
    t = PROFILE_T if PROFILE_T in ts else ts[0]
    lines += ["", f"## Where the disagreements are (in play, T={t})", "",
              "The member's Q-gap at a decision: its best Q-value minus its second best, in units of its median "
              "gap over the decisions played (`disagreement_by_q_gap` of `spikeverse evaluate --json`). Rate: the "
              "share of the decisions in that gap range on which the SNN picks another action.", "",
              "| member | method | rate | median gap | disagreements below the median gap | rate, gap < 0.25 | "
              "rate, 0.25-1 | rate, >= 1 |", "|---|---|---|---|---|---|---|---|"]
    for r in d["rows"]:
        p = next((p for p in r["play"] if p["timesteps"] == t), None)
        prof = (p or {}).get("disagreement_by_q_gap")
        if not prof:
            continue
        lines.append(f"| {r['member']} | {r['method']} | {p['conversion_rate']:.3f} | {prof['median_gap']:.3g} | "
                     + ("-" if prof["below_median_share"] is None else f"{prof['below_median_share']:.0%}") + " | "
                     + " | ".join(_rate(prof, lo, hi) for lo, hi in ((0, 0.25), (0.25, 1.0), (1.0, None))) + " |")
    lines += ["", "## Energy per decision (uJ, 45 nm convention)", "",
              "| member | method | " + " | ".join(f"T={t}" for t in ts) + " | member (ANN) |",
              "|---|---|" + "---|" * len(ts) + "---|"]
    for r in d["rows"]:
        if r["play"][0]["energy_uJ_per_decision"] is None:  # the peer's rows: not metered
            continue
        lines.append(f"| {r['member']} | {r['method']} | " + " | ".join(f"{p['energy_uJ_per_decision']:.3g}"
                                                                      for p in r["play"])
                     + f" | {r['play'][0]['ann_energy_uJ_per_decision']:.3g} |")
    return "\n".join(lines) + "\n"


GOAL_T, GOAL_RATE, GOAL_HELD_OUT = 8, 0.99, 0.97  # issue 16: at T <= 8, in play and on every held-out state set


def goal_point(r: dict) -> dict | None:
    """The row's best T <= GOAL_T by conversion rate in play: T, rate, Welch p, lowest held-out
    agreement, energy per decision and whether both goals are met there."""
    pts = []
    for i, p in enumerate(r["play"]):
        if p["timesteps"] > GOAL_T:
            continue
        low = min(curve[i] for curve in r["state_sets"].values())
        ok = (p["conversion_rate"] >= GOAL_RATE and (p["p_value"] is None or p["p_value"] > 0.05)
              and low >= GOAL_HELD_OUT)
        pts.append(dict(timesteps=p["timesteps"], rate=p["conversion_rate"], p=p["p_value"], lowest=low,
                        energy=p["energy_uJ_per_decision"], met=ok))
    return max(pts, key=lambda q: (q["met"], q["rate"]), default=None)


def _goal_lines(d: dict) -> list[str]:
    rows = [(r, goal_point(r)) for r in d["rows"]]
    methods = sorted({r["method"] for r, _ in rows}, key=(*METHODS, PEER).index)
    lines = ["## The goal per member", "",
             f"Issue 16's goal at T <= {GOAL_T}: conversion rate >= {GOAL_RATE} in play with the SNN's score within noise "
             f"of the member's (Welch p > 0.05), and agreement >= {GOAL_HELD_OUT} on every held-out state set. Per "
             "row, the T of 4 and 8 that meets it, or else the one with the higher rate in play.", ""]
    for m in methods:
        got = [(r, g) for r, g in rows if r["method"] == m and g]
        lines.append(f"- {m}: met on {sum(g['met'] for _, g in got)}/{len(got)} members"
                     + (f" ({', '.join(r['member'] for r, g in got if g['met'])})" if any(g["met"] for _, g in got)
                        else "") + ".")
    lines += ["", "| member | method | T | rate in play | Welch p | lowest held-out | energy uJ | met |",
              "|---|---|---|---|---|---|---|---|"]
    for r, g in rows:
        if g is None:
            continue
        e = "-" if g["energy"] is None else f"{g['energy']:.3g}"
        pv = "-" if g["p"] is None else f"{g['p']:.3f}"
        lines.append(f"| {r['member']} | {r['method']} | {g['timesteps']} | {g['rate']:.3f} | {pv} | "
                     f"{g['lowest']:.3f} | {e} | {'yes' if g['met'] else 'no'} |")
    return lines


def _rate(prof: dict, lo: float, hi: float | None) -> str:
    """Disagreement rate over the profile's bins inside [lo, hi) of gap / median."""
    bins = [b for b in prof["bins"] if b["gap_over_median"][0] >= lo
            and (hi is None or (b["gap_over_median"][1] is not None and b["gap_over_median"][1] <= hi))]
    n, k = sum(b["decisions"] for b in bins), sum(b["disagreements"] for b in bins)
    return f"{k / n:.3f} ({n})" if n else "-"


REPORTS = {NAME: render}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--methods", nargs="+", choices=METHODS + (PEER,), default=["tan", "fast"])
    ap.add_argument("--peer-python", help=f"{PEER}: the python of a venv with spikingjelly (and spikeverse)")
    ap.add_argument("--members", nargs="+", help="zoo member names (default: every trained one)")
    ap.add_argument("--report", action="store_true")
    args = ap.parse_args()
    if args.report:
        rewrite_reports(REPORTS)
        return
    torch.set_num_threads(1)
    zoo = members()
    if not zoo:
        raise SystemExit("the zoo is empty: run benchmarks/zoo.py first")
    chosen = [m for m in zoo if not args.members or m["name"] in args.members]
    if PEER in args.methods and not args.peer_python:
        raise SystemExit(f"--methods {PEER} needs --peer-python")
    runs = RUNS / NAME
    path = RESULTS / f"{NAME}.json"
    rows = json.loads(path.read_text())["rows"] if path.exists() else []
    for m in chosen:
        for method in args.methods:
            row = run_peer(m, zoo, runs, args.peer_python) if method == PEER else run_one(m, method, zoo, runs)
            rows = [r for r in rows if (r["member"], r["method"]) != (row["member"], method)] + [row]
            rows.sort(key=lambda r: (r["member"], (*METHODS, PEER).index(r["method"])))
            print(row["member"], method, [p["conversion_rate"] for p in row["play"]], flush=True)
            write_report(NAME, dict(command="python benchmarks/conversion_zoo.py", timesteps=list(TIMESTEPS),
                                    episodes=EPISODES, play_seed=PLAY_SEED, rows=rows), render)


if __name__ == "__main__":
    main()
