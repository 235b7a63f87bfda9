"""The MinAtar study (issue 15): all five games x 3 seeds x {DQN, tan at T=500 with p = 99.9 and
99.99 (seed 001), fast with auto T, DSQN at T=8 (seed 003)}, 2M training frames each, on
`spikeverse study`. It runs for days on 2 cores, across sessions and machines, so it resumes: every
call continues the study in benchmarks/studies/minatar_study/, a folder kept in git (commit it: a
cell in progress when a session ends resumes from its committed checkpoint on the next machine),
and rewrites results/minatar_study.{json,md} from what has finished.

    python benchmarks/minatar_study.py --workers 2        # run or continue
    python benchmarks/minatar_study.py --collect          # the results so far (spikeverse study --report-only)
    OMP_NUM_THREADS=2 python benchmarks/minatar_study.py --atari --workers 1   # the Atari row (2 cores)

The Atari row (``--atari``, its own study in benchmarks/studies/atari_breakout/): Breakout
(``BreakoutNoFrameskip-v4``, Mnih et al. 2015 preprocessing), one seed, the DQN trained for as long
as a 2-hour wall-time budget allows (counted over every session; one worker, two torch threads),
converted and evaluated as the MinAtar games are (DSQN left out).
    python benchmarks/minatar_study.py --report           # rewrite the markdown from the JSON

MinAtar's paper DQN after 5M frames (read off the MinAtar README's curves) is the reference line:
Breakout ~10, SpaceInvaders ~43, Asterix ~17, Freeway ~50, Seaquest ~20. Seeds 0-2: the MinAtar
defaults were tuned on Breakout seed 0 only (the throughput settings on seeds 100-102).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import yaml
from _results import RESULTS, rewrite_reports, write_report

NAME = "minatar_study"
GAMES = ["MinAtar/Breakout", "MinAtar/SpaceInvaders", "MinAtar/Asterix", "MinAtar/Freeway", "MinAtar/Seaquest"]
PAPER_DQN_5M = {"MinAtar/Breakout": 10, "MinAtar/SpaceInvaders": 43, "MinAtar/Asterix": 17, "MinAtar/Freeway": 50,
                "MinAtar/Seaquest": 20}
STUDY = dict(envs=GAMES, seeds=[0, 1, 2], frames=2_000_000, episodes=50,
             agents=["dqn", {"tan": {"timesteps": 500, "percentiles": [99.9, 99.99]}}, {"fast": {"timesteps": "auto"}},
                     {"dsqn": {"timesteps": 8}}],
             robustness=["gaussian:0.1,0.2", "occlusion-patch:2,4"])
ATARI = dict(envs=["BreakoutNoFrameskip-v4"], seeds=[0], frames=10_000_000, train_hours={"BreakoutNoFrameskip-v4": 2},
             episodes=50, agents=[a for a in STUDY["agents"] if "dsqn" not in a])
ROOT = Path(__file__).resolve().parent.parent
STUDIES = Path("benchmarks") / "studies"  # tracked in git, unlike runs/: the study outlives the machine; relative to
# the repository root (the cwd while it runs), so the paths a study records hold in any clone


def render(d: dict) -> str:
    from spikeverse.study.report import markdown

    ref = ", ".join(f"{g.split('/')[1]} ~{v}" for g, v in PAPER_DQN_5M.items())
    md = (f"`{d['command']}`\n\nReference: MinAtar's paper DQN after 5M frames: {ref}.\n\n"
          + markdown(d["results"]).replace("](figures/", f"](../studies/{NAME}/figures/"))
    if d.get("atari"):
        md += (f"\n# The Atari row\n\n`{d['atari_command']}`\n\n"
               + markdown(d["atari"]).split("\n", 1)[1].replace("](figures/", "](../studies/atari_breakout/figures/"))
    return md


REPORTS = {NAME: render}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--report", action="store_true", help="rewrite the markdown from the JSON")
    ap.add_argument("--collect", action="store_true", help="write the results from the cells finished so far; run nothing")
    ap.add_argument("--atari", action="store_true", help="the Atari Breakout row's study instead of the MinAtar games'")
    args = ap.parse_args()
    if args.report:
        rewrite_reports(REPORTS)
        return
    from spikeverse.cli.app import main as cli

    os.chdir(ROOT)
    name, study = ("atari_breakout", ATARI) if args.atari else (NAME, STUDY)
    out = STUDIES / name
    out.mkdir(parents=True, exist_ok=True)
    (out.parent / f"{name}.yaml").write_text(yaml.safe_dump(study, sort_keys=False))
    run = ["--report-only"] if args.collect else ["--resume", "--workers", str(args.workers), "--no-progress"]
    rc = cli(["study", str(out.parent / f"{name}.yaml"), "--out", str(out), *run])
    if rc != 0:
        sys.exit(rc)
    path = RESULTS / f"{NAME}.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    command = f"python benchmarks/minatar_study.py{' --atari' if args.atari else ''} --workers {args.workers}"
    data.update({"atari_command": command, "atari": json.loads((out / "results.json").read_text())} if args.atari else
                {"command": command, "results": json.loads((out / "results.json").read_text())})
    if "results" not in data:
        raise SystemExit("the MinAtar study has no results yet: run or --collect it first")
    write_report(NAME, data, render)
    print(f"wrote {RESULTS / NAME}.md")


if __name__ == "__main__":
    main()
