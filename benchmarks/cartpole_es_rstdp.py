"""CartPole-v1: an evolution strategy vs reward-modulated STDP on the same spiking network
(issue 6; Hasegan et al., seed 002 sec. 2.3: EVOL 499 of 500 steps, STDP-RL 64-145).

Per seed: trains the CartPole SNN (``models.cartpole_snn``) with OpenAI-ES (``evo.es``, default
config, until its mean weights reach 475 over 20 + 100 episodes, at most 200 generations) and
with R-STDP (``rl.rstdp``, default config, 200 episodes), then evaluates each on the same 100
episodes of the evaluation protocol (``rl.evaluation.evaluate``, epsilon 0, evaluation seed 0),
and once a random policy (epsilon 1) on the same episodes. ``--methods angle`` adds the ablation
of R-STDP whose critic sees the pole angle only (critic_horizon 0). Solved: evaluation mean >= 475.

The ES defaults were tuned on seeds 0-2, R-STDP's on seed 0 (module docstrings of evo/es.py and
rl/rstdp.py; seed 0's run: results/cartpole_es_rstdp_tuning_seeds.json); the headline runs on
seeds the tuning never saw:

    python benchmarks/cartpole_es_rstdp.py --seeds $(seq 100 109) --methods es rstdp angle --workers 1
    python benchmarks/cartpole_es_rstdp.py --report     # rewrite the markdown from the JSON alone

Every (method, seed) trains in benchmarks/runs/cartpole_es_rstdp/METHOD-seedS (ES and R-STDP
resume there) and, once evaluated, is kept as METHOD-seedS.json (a rerun skips it); the results
JSON and markdown are rewritten after each one, so a killed run resumes and partial counts are
honest. Writes benchmarks/results/cartpole_es_rstdp.{json,md}.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from _results import RUNS, load_unit, median, rewrite_reports, save_unit, seed_span, write_report

NAME = "cartpole_es_rstdp"
EPISODES = 100
SOLVED = 475.0
TUNING_SEEDS = {"es": [0, 1, 2], "rstdp": [0], "angle": [0]}
LABELS = {"es": "ES (OpenAI-ES, default config)", "rstdp": "R-STDP (default config)",
          "angle": "R-STDP, angle-only critic (critic_horizon 0)"}
PUBLISHED = {"EVOL": "499 of 500 steps", "STDP-RL": "64-145 steps", "source": "Hasegan et al. 2022 (seed 002 sec. 2.3)"}


def _eval(policy, epsilon: float) -> dict:
    from spikeverse.rl.evaluation import evaluate

    t0 = time.perf_counter()
    res = evaluate(policy, "CartPole-v1", episodes=EPISODES, epsilon=epsilon, seed=0)
    return {"mean": round(res.mean, 2), "std": round(res.std, 2), "min": min(res.scores), "max": max(res.scores),
            "eval_wall_s": round(time.perf_counter() - t0, 2)}


def run_one(method: str, seed: int, runs: Path, workers: int) -> dict:
    from spikeverse.agents import load_policy

    run = runs / f"{method}-seed{seed}"
    if method == "es":
        from spikeverse.evo.es import ESConfig, run_es
        from spikeverse.evo.executor import make_executor

        cfg = ESConfig(seed=seed)
        with make_executor("local", workers) as ex:
            s = run_es(cfg, run, ex)
        row = {"generations": s["generations"], "solved_generation": s["solved_generation"], "wall_s": s["wall_s"]}
    else:
        from spikeverse.rl.rstdp import RSTDPConfig, train_rstdp

        cfg = RSTDPConfig(seed=seed, **({"critic_horizon": 0.0} if method == "angle" else {}))
        s = train_rstdp(cfg, run, progress=False)
        row = {"episodes": s["episodes"], "steps": s["steps"], "best_eval": s["best_eval"],
               "best_eval_episode": s["best_eval_episode"], "wall_s": s["wall_s"]}
    policy, _ = load_policy(run)
    return {"method": method, "seed": seed, **row, "evaluation": _eval(policy, 0.0), "config": cfg.to_dict()}


def random_policy(runs: Path) -> dict:
    """epsilon 1 on the protocol's 100 episodes: every action uniform at random (the network is unused)."""
    from spikeverse.agents import load_policy

    some = next(p for p in sorted(runs.glob("*-seed*")) if p.is_dir())
    return _eval(load_policy(some)[0], 1.0)


def summarise(rows: list[dict], random: dict | None, methods: list[str], seeds: list[int], workers: int,
              command: str) -> dict:
    per = {}
    for m in methods:
        rs = [r for r in rows if r["method"] == m]
        means = [r["evaluation"]["mean"] for r in rs]
        per[m] = {"seeds_done": [r["seed"] for r in rs], "seeds_planned": seeds, "tuning_seeds": TUNING_SEEDS[m],
                  "untuned_done": sum(r["seed"] not in TUNING_SEEDS[m] for r in rs),
                  "solved": sum(x >= SOLVED for x in means), "median_eval_mean": median(means),
                  "min_eval_mean": min(means, default=None), "median_wall_s": median(r["wall_s"] for r in rs)}
        if m == "es":
            per[m]["median_solved_generation"] = median(r["solved_generation"] for r in rs)
            per[m]["reached_target"] = sum(r["solved_generation"] is not None for r in rs)
    return {"benchmark": NAME, "env": "CartPole-v1", "eval_episodes": EPISODES, "eval_seed": 0, "command": command,
            "workers": workers, "threads": 1, "methods": methods, "summary": per, "rows": rows, "random": random,
            "published": PUBLISHED}


def render(d: dict) -> str:
    lines = ["# CartPole-v1: evolution strategy vs R-STDP on one spiking network", "",
             f"`{d['command']}`", "",
             f"Evaluation: the same {d['eval_episodes']} episodes (protocol seed {d['eval_seed']}) for every run, "
             f"epsilon 0 for the SNNs, epsilon 1 for the random policy; solved = evaluation mean >= {SOLVED:g}. "
             f"ES on {d['workers']} worker process(es), {d['threads']} torch thread; wall times on a 2-core machine "
             "shared with other jobs.", "",
             "| method | seeds run | defaults tuned on seeds | solved | median eval mean | "
             "lowest eval mean | median training wall s |",
             "|---|---|---|---|---|---|---|"]
    for m in d["methods"]:
        s = d["summary"][m]
        n = len(s["seeds_done"])
        med = "-" if s["median_eval_mean"] is None else f"{s['median_eval_mean']:.1f}"
        low = "-" if s["min_eval_mean"] is None else f"{s['min_eval_mean']:.1f}"
        lines.append(f"| {LABELS[m]} | {seed_span(s['seeds_done'])} ({n} of {len(s['seeds_planned'])} planned; "
                     f"{s['untuned_done']} untuned) | {seed_span(s['tuning_seeds'])} | {s['solved']}/{n} | {med} | {low} | "
                     f"{s['median_wall_s']} |")
    if d.get("random"):
        r = d["random"]
        lines.append(f"| random policy | - | - | - | {r['mean']:.1f} (std {r['std']}, min {r['min']}) | - | - |")
    for m in d["methods"]:
        rs = [r for r in d["rows"] if r["method"] == m]
        if not rs:
            continue
        lines += ["", f"## {LABELS[m]}", ""]
        if m == "es":
            lines += ["| seed | eval mean | std | min | generations | target reached at | training wall s |",
                      "|---|---|---|---|---|---|---|"]
            lines += [f"| {r['seed']} | {r['evaluation']['mean']} | {r['evaluation']['std']} | {r['evaluation']['min']} | "
                      f"{r['generations']} | {r['solved_generation'] if r['solved_generation'] is not None else '-'} | "
                      f"{r['wall_s']} |" for r in rs]
            s = d["summary"][m]
            med = s["median_solved_generation"]
            lines += ["", f"ES mean weights reached the target (475 over 20 + 100 episodes) in {s['reached_target']}/"
                      f"{len(rs)} runs, median generation {'-' if med is None else med}."]
        else:
            lines += ["| seed | eval mean | std | min | episodes | steps | best weights from episode | training wall s |",
                      "|---|---|---|---|---|---|---|---|"]
            lines += [f"| {r['seed']} | {r['evaluation']['mean']} | {r['evaluation']['std']} | {r['evaluation']['min']} | "
                      f"{r['episodes']} | {r['steps']} | {r['best_eval_episode']} | {r['wall_s']} |" for r in rs]
    p = d["published"]
    lines += ["", f"Published ({p['source']}): EVOL {p['EVOL']}, STDP-RL {p['STDP-RL']}.", ""]
    return "\n".join(lines)


REPORTS = {NAME: render, "cartpole_es_rstdp_tuning_seeds": render}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(100, 110)))
    ap.add_argument("--methods", nargs="+", choices=list(LABELS), default=["es", "rstdp"])
    ap.add_argument("--workers", type=int, default=1, help="ES: evaluation processes")
    ap.add_argument("--runs", default=str(RUNS / NAME), help="run directories and finished units (a rerun resumes)")
    ap.add_argument("--report", action="store_true", help="only rewrite results/*.md from the JSON")
    args = ap.parse_args()
    if args.report:
        rewrite_reports(REPORTS)
        return
    torch.set_num_threads(1)
    runs = Path(args.runs)
    command = (f"python benchmarks/cartpole_es_rstdp.py --seeds {' '.join(map(str, args.seeds))} "
               f"--methods {' '.join(args.methods)} --workers {args.workers}")
    rows, random = [], load_unit(runs / "random.json")
    # seed-major order: an interrupted batch still has every method on the first seeds
    for seed in args.seeds:
        for m in args.methods:
            unit = runs / f"{m}-seed{seed}.json"
            if (r := load_unit(unit)) is None:
                r = run_one(m, seed, runs, args.workers)
                save_unit(unit, r)
            rows.append(r)
            print(m, seed, r["evaluation"], r["wall_s"], flush=True)
            if random is None:
                random = random_policy(runs)
                save_unit(runs / "random.json", random)
            write_report(NAME, summarise(rows, random, args.methods, args.seeds, args.workers, command), render)
    print(render(summarise(rows, random, args.methods, args.seeds, args.workers, command)))


if __name__ == "__main__":
    main()
