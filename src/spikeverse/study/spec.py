"""What a multi-game study is (SPEC R-STUDY, issue 15): a grid of environments x seeds x agents,
read from STUDY.yaml and/or the quick-grid flags, validated before any work.

    envs: [MinAtar/Breakout, MinAtar/Freeway]
    seeds: [0, 1, 2]
    frames: 2000000            # training frames of every trained agent (or {ENV: frames, ...})
    train_hours: {ALE/Breakout-v5: 2}   # optional: stop a training after this much wall time in all
    episodes: 50               # evaluation episodes per agent and seed (seed 001 protocol)
    agents:
      - dqn
      - rainbow
      - tan: {timesteps: 500, percentiles: [99.9, 99.99]}   # seed 001
      - fast: {timesteps: auto}                             # the smallest T keeping 0.99 of the decisions
      - naive: {timesteps: 100}                             # seed 000
      - dsqn: {timesteps: 8}                                # seed 003
    robustness: [gaussian:0.1,0.3, occlusion-bottom:1,2]   # optional: area under the score curve per agent

An agent is a name or ``{name: {option: value}}``; the options each takes are in ``AGENT_OPTIONS``,
any other is refused. Converted agents (tan, fast, naive) are converted from the DQN of the same
environment and seed, so ``dqn`` is always trained when one of them is asked for.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from spikeverse.envs.perturbations import parse_spec
from spikeverse.errors import SpikeverseError
from spikeverse.rl.env_check import check_agent_env
from spikeverse.study.robustness import KINDS

TRAINED = ("dqn", "rainbow", "dsqn")
CONVERTED = ("tan", "fast", "naive")
AGENT_OPTIONS: dict[str, dict[str, Any]] = {
    "dqn": {},
    "rainbow": {},
    "dsqn": {"timesteps": 8},
    "tan": {"timesteps": 500, "percentiles": [99.9, 99.99], "collection_frames": 15_000},
    "fast": {"timesteps": "auto", "percentile": 99.9, "target": 0.99, "collection_frames": 15_000,
             "finetune_steps": None, "finetune_frames": None},
    "naive": {"timesteps": 100, "collection_frames": 15_000},
}
# converted agents: the frames the DQN plays for the activation statistics (seed 001: 15,000); fast:
# the QCFS fine-tune's Adam steps and frames (None: the method's defaults, spikeverse convert's)
SPEC_KEYS = ("envs", "seeds", "frames", "episodes", "agents", "robustness", "epsilon", "eval_seed", "train_hours")


@dataclass(frozen=True)
class AgentSpec:
    """One agent of the grid: its kind (a key of ``AGENT_OPTIONS``) and its resolved options."""

    kind: str
    options: dict[str, Any] = field(default_factory=dict)

    def variants(self) -> list[tuple[str, dict[str, Any]]]:
        """(name, options) of each agent this spec expands to: tan gives one per percentile
        (``tan-p99.9``), the others one (their kind)."""
        if self.kind == "tan":
            rest = {k: v for k, v in self.options.items() if k != "percentiles"}
            return [(f"tan-p{p:g}", {**rest, "percentile": float(p)}) for p in self.options["percentiles"]]
        return [(self.kind, dict(self.options))]


@dataclass(frozen=True)
class StudySpec:
    envs: tuple[str, ...]
    seeds: tuple[int, ...]
    agents: tuple[AgentSpec, ...]
    frames: dict[str, int | None]  # per env; None: the env's default training length
    episodes: int = 50
    epsilon: float = 0.05
    eval_seed: int = 0  # evaluation episodes are seeded from (eval_seed, episode): the same for every agent
    robustness: tuple[str, ...] = ()
    train_hours: dict[str, float] = field(default_factory=dict)  # per env: a training's wall-time budget

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["agents"] = [{a.kind: a.options} for a in self.agents]
        return d

    def agent_names(self) -> list[str]:
        """Every agent of the report, in grid order (dqn first)."""
        names = ["dqn"] + [n for a in self.agents for n, _ in a.variants() if n != "dqn"]
        return list(dict.fromkeys(names))


def _agent(entry: Any) -> AgentSpec:
    if isinstance(entry, str):
        kind, given = entry, {}
    elif isinstance(entry, dict) and len(entry) == 1:
        kind, given = next(iter(entry.items()))
        given = given or {}
        if not isinstance(given, dict):
            raise SpikeverseError(f"agent {kind}: its options must be a mapping, got {given!r}")
    else:
        raise SpikeverseError(f"an agent is a name or {{name: {{options}}}}, got {entry!r}")
    if kind not in AGENT_OPTIONS:
        raise SpikeverseError(f"unknown agent '{kind}' (choose from {', '.join(AGENT_OPTIONS)})")
    unknown = set(given) - set(AGENT_OPTIONS[kind])
    if unknown:
        takes = ", ".join(AGENT_OPTIONS[kind]) or "none"
        raise SpikeverseError(f"agent {kind} does not take {', '.join(sorted(unknown))} (it takes: {takes})")
    options = {**AGENT_OPTIONS[kind], **given}
    t = options.get("timesteps")
    if t is not None and not (t == "auto" and kind == "fast") and not (isinstance(t, int) and t >= 1):
        raise SpikeverseError(f"agent {kind}: timesteps must be an integer >= 1"
                              + (" or auto" if kind == "fast" else "") + f", got {t!r}")
    if kind == "tan":
        ps = options["percentiles"]
        if not isinstance(ps, list) or not ps or not all(isinstance(p, (int, float)) and 0 < p <= 100 for p in ps):
            raise SpikeverseError(f"agent tan: percentiles must be a list of numbers in (0, 100], got {ps!r}")
    if kind == "fast" and not (isinstance(options["target"], (int, float)) and 0 < options["target"] <= 1):
        raise SpikeverseError(f"agent fast: target must be in (0, 1], got {options['target']!r}")
    for key in ("collection_frames", "finetune_steps", "finetune_frames"):
        v = options.get(key)
        if key in options and v is not None and not (isinstance(v, int) and v >= 1):
            raise SpikeverseError(f"agent {kind}: {key} must be an integer >= 1, got {v!r}")
    return AgentSpec(kind, options)


def _ints(values: Any, what: str) -> tuple[int, ...]:
    values = values if isinstance(values, (list, tuple)) else [values]
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
        raise SpikeverseError(f"{what} must be a list of integers >= 0, got {values!r}")
    if len(set(values)) < len(values):
        raise SpikeverseError(f"{what} lists a value twice: {values!r}")
    return tuple(values)


def load_spec(path: str | Path | None = None, **flags: Any) -> StudySpec:
    """The study of STUDY.yaml ``path`` with the quick-grid ``flags`` (envs, seeds, agents,
    frames, episodes; None: not given) on top; every field checked, environments included."""
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise SpikeverseError(f"no study file at {p}")
        try:
            raw = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise SpikeverseError(f"{p} is not valid YAML: {str(e).splitlines()[0]}") from None
        if not isinstance(raw, dict):
            raise SpikeverseError(f"{p} must hold a mapping of {', '.join(SPEC_KEYS)}")
        unknown = set(raw) - set(SPEC_KEYS)
        if unknown:
            raise SpikeverseError(f"{p}: unknown key(s) {', '.join(sorted(unknown))} (a study has {', '.join(SPEC_KEYS)})")
    raw.update({k: v for k, v in flags.items() if v is not None})
    for key in ("envs", "seeds", "agents"):
        if not raw.get(key):
            raise SpikeverseError(f"the study names no {key} (give them in STUDY.yaml or with --{key})")
    envs = raw["envs"] if isinstance(raw["envs"], list) else [raw["envs"]]
    if not all(isinstance(e, str) for e in envs) or len(set(envs)) < len(envs):
        raise SpikeverseError(f"envs must be a list of distinct environment ids, got {envs!r}")
    for env in envs:
        check_agent_env("dqn", env)  # an unknown env or one a DQN cannot play: one line, before any work
    agents = [_agent(a) for a in (raw["agents"] if isinstance(raw["agents"], list) else [raw["agents"]])]
    kinds = [a.kind for a in agents]
    if len(set(kinds)) < len(kinds):
        raise SpikeverseError(f"the study names an agent twice: {', '.join(kinds)}")
    if "dqn" not in kinds:  # the reference of every table, and the source of every conversion
        agents.insert(0, AgentSpec("dqn"))
    frames = raw.get("frames")
    per_env = frames if isinstance(frames, dict) else {e: frames for e in envs}
    if set(per_env) - set(envs):
        raise SpikeverseError(f"frames names env(s) not in the study: {', '.join(sorted(set(per_env) - set(envs)))}")
    for e, f in per_env.items():
        if f is not None and not (isinstance(f, int) and f >= 1):
            raise SpikeverseError(f"frames of {e} must be an integer >= 1, got {f!r}")
    episodes = raw.get("episodes", 50)
    if not isinstance(episodes, int) or episodes < 2:
        raise SpikeverseError(f"episodes must be an integer >= 2 (the Welch test needs two), got {episodes!r}")
    epsilon = raw.get("epsilon", 0.05)
    if not isinstance(epsilon, (int, float)) or not 0 <= epsilon <= 1:
        raise SpikeverseError(f"epsilon must be in [0, 1], got {epsilon!r}")
    robustness = raw.get("robustness") or []
    if isinstance(robustness, str):
        robustness = [robustness]
    if robustness:
        for s in robustness:
            parse_spec(s, KINDS)
    hours = raw.get("train_hours") or {}
    if not isinstance(hours, dict) or set(hours) - set(envs):
        raise SpikeverseError(f"train_hours maps env ids of the study to hours, got {hours!r}")
    for e, h in hours.items():
        if not (isinstance(h, (int, float)) and not isinstance(h, bool) and h > 0):
            raise SpikeverseError(f"train_hours of {e} must be a number > 0, got {h!r}")
    return StudySpec(train_hours={e: float(h) for e, h in hours.items()}, envs=tuple(envs), seeds=_ints(raw["seeds"], "seeds"), agents=tuple(agents),
                     frames={e: per_env.get(e) for e in envs}, episodes=episodes, epsilon=float(epsilon),
                     eval_seed=_ints(raw.get("eval_seed", 0), "eval_seed")[0], robustness=tuple(robustness))


def parse_list(text: str | None, cast=str) -> list | None:
    """A comma-separated flag value as a list (None when the flag is not given)."""
    if text is None:
        return None
    try:
        return [cast(v.strip()) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SpikeverseError(f"expected comma-separated values, got {text!r}") from None
