"""Shared plumbing of the benchmark scripts: every results markdown is rendered from the JSON
beside it by its script's ``REPORTS[name](data)``, so ``python benchmarks/SCRIPT.py --report``
rewrites the markdown from the JSON alone and ``tests/test_benchmark_reports.py`` checks that
each committed markdown equals its render. Per-seed work lands in a run directory
(``benchmarks/runs/...``, one JSON file per finished unit), so a killed benchmark resumes there.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
RUNS = Path(__file__).parent / "runs"

# MinAtar's training loop before issue 14 made it 8 envs and one bfloat16 update of 256 per 8 frames:
# 1 env, one float32 update of 32 per frame. The MinAtar results of the benchmarks that predate the
# change were trained so; they pin it, so that a rerun reproduces and resumes them.
MINATAR_LOOP_BEFORE_ISSUE_14 = dict(num_envs=1, batch_size=32, precision="float32")
MINATAR_LOOP_FLAGS = ["--num-envs", "1", "--batch-size", "32"]  # + "--precision float32" for a DQN (DSQN is float32)
# CartPole's DQN loop before issue 14 made it 4 envs, one update of 256 per 4 frames, the target copied
# every 200 frames, model selection on 20 episodes, a stop at a selection mean of 500 and at most 100k
# frames (50k before, epsilon decaying over the same first 10k). The
# benchmarks whose CartPole DQNs predate the change pin it (apply with dataclasses.replace: None is
# a value here, "train to the last step").
CARTPOLE_LOOP_BEFORE_ISSUE_14 = dict(total_steps=50_000, epsilon_fraction=0.2, num_envs=1, batch_size=128,
                                     train_freq=2, target_update_interval=100, eval_episodes=5, stop_score=None)
# `spikeverse convert` flags of the conversion methods the benchmarks compare; fast-wide (issue 16): the fast
# method with the fine-tune's frames also played at epsilon 0.3 and 1, its cross-entropy tempered at the median Q-gap;
# fast-wide-l8: fast-wide quantized at L = 8 (levels 4 and 8) for T <= 8 instead of L = 32 (4, 8, 16, 32);
# -long: the fine-tune in up to LONG_CYCLES cycles of 50,000 steps while its validation agreement rises
FAST_WIDE = ["--method", "fast", "--finetune-epsilons", "0.05,0.3,1", "--margin-scale", "gap"]
LONG_CYCLES = 8
LONG = ["--finetune-cycles", str(LONG_CYCLES)]
CONVERT_FLAGS = {"tan": ["--method", "tan"], "fast": ["--method", "fast"], "fast-long": ["--method", "fast", *LONG],
                 "fast-wide": FAST_WIDE, "fast-wide-l8": [*FAST_WIDE, "--levels", "8"],
                 "fast-wide-l8-long": [*FAST_WIDE, "--levels", "8", *LONG]}
LOOP_BEFORE_ISSUE_14 = {"CartPole-v1": CARTPOLE_LOOP_BEFORE_ISSUE_14}  # MinAtar ids: MINATAR_LOOP_BEFORE_ISSUE_14


def loop_before_issue_14(env_id: str) -> dict:
    """The DQNConfig fields that pin env_id's training loop of before issue 14 ({} if it did not change)."""
    return MINATAR_LOOP_BEFORE_ISSUE_14 if env_id.startswith("MinAtar/") else LOOP_BEFORE_ISSUE_14.get(env_id, {})


def cli(*args: str) -> dict:
    """``spikeverse ARGS --json --no-progress`` in a subprocess with one torch thread; its JSON output
    (a failure stops the benchmark with the command's last stderr line)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "spikeverse.cli", *args, "--json", "--no-progress"],
                         capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"spikeverse {' '.join(args)}: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def seed_span(seeds: list[int]) -> str:
    """Runs of 3 or more consecutive seeds as 'first-last', the others listed ('0-9 100-109', '0 3 7')."""
    s = sorted(set(seeds))
    if not s:
        return "none"
    runs: list[list[int]] = []
    for x in s:
        if runs and x == runs[-1][-1] + 1:
            runs[-1].append(x)
        else:
            runs.append([x])
    return " ".join(f"{r[0]}-{r[-1]}" if len(r) > 2 else " ".join(map(str, r)) for r in runs)


def median(xs, digits: int = 3) -> float | None:
    """The median of the values that are not None, rounded to ``digits`` (None if there are none)."""
    xs = [x for x in xs if x is not None]
    return round(statistics.median(xs), digits) if xs else None


def write_json(name: str, data: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=1) + "\n")


def write_report(name: str, data: dict, render: Callable[[dict], str]) -> str:
    """Write results/NAME.json and results/NAME.md = render(data); return the markdown."""
    write_json(name, data)
    md = render(json.loads(json.dumps(data)))  # render what the file holds (tuples become lists)
    (RESULTS / f"{name}.md").write_text(md)
    return md


def rewrite_reports(reports: dict[str, Callable[[dict], str]]) -> list[str]:
    """--report: rewrite every results/NAME.md of ``reports`` whose JSON exists, from the JSON alone."""
    done = []
    for name, render in reports.items():
        path = RESULTS / f"{name}.json"
        if path.exists():
            (RESULTS / f"{name}.md").write_text(render(json.loads(path.read_text())))
            done.append(name)
    print("rewrote", ", ".join(f"results/{n}.md" for n in done) or "nothing")
    return done


def load_unit(path: Path) -> dict | None:
    """A finished unit of a run directory (None if it has not finished)."""
    return json.loads(path.read_text()) if path.exists() else None


def save_unit(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)
