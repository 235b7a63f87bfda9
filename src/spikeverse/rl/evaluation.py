"""The evaluation protocol of seed 001 (SPEC R-RL-EVAL), for any :class:`~spikeverse.policy.Policy`.

Per episode: reset, a random number k ~ U{0..noop_max} of no-op actions (only where the game has
a no-op action; classic control has none, and the output says so), then act epsilon-greedily
(epsilon = 0.05) until the game ends or the episode cap is reached. The cap counts agent steps
(after frame skip), as the seed authors' code does; by default 18,000 for Atari and the env's own
limit otherwise. Scores are full-game, unclipped returns.

Episode e is seeded from (seed, e) alone, so the result does not depend on how many
environments run side by side. Several environments are stepped together so that a policy sees
a batch of observations per call (this matters for spiking policies that simulate T steps).
With ``shadow`` given, the shadow policy's greedy action on the same observation is compared
with the acting policy's greedy action: the conversion rate CR = E / NA of seed 001 eq. 18.
Each decision also keeps the shadow's Q-gap there (its best Q-value minus its second best), so
:func:`q_gap_profile` can say where the disagreements are: a converted SNN that disagrees only
where the DQN itself hardly prefers one action loses little score.
With ``observe`` given (e.g. an ``envs.perturbations.Perturbation``), the acting policy sees
``observe(obs, episode ids, decision indices)`` instead of the observation; the shadow, and
the environment, keep the clean one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch

from spikeverse.envs import default_eval_cap, make, noop_action
from spikeverse.errors import SpikeverseError
from spikeverse.policy import Policy
from spikeverse.progress import reporter


@dataclass
class EvalResult:
    env: str
    episodes: int
    scores: list[float]
    lengths: list[int]
    epsilon: float
    noop_max: int
    noops_applied: bool
    max_episode_steps: int | None
    cap_unit: str = "agent steps (after frame skip)"
    agreements: list[int] = field(default_factory=list)
    decisions: list[int] = field(default_factory=list)
    # with a shadow, per decision in play order: the shadow's Q-gap and whether the actions agreed
    shadow_gaps: list[float] = field(default_factory=list, repr=False)
    agreed: list[bool] = field(default_factory=list, repr=False)

    @property
    def mean(self) -> float:
        return float(np.mean(self.scores))

    @property
    def std(self) -> float:
        return float(np.std(self.scores, ddof=1)) if len(self.scores) > 1 else 0.0

    @property
    def conversion_rate(self) -> float | None:
        """CR = agreeing actions / all actions, over all episodes (seed 001 eq. 18)."""
        return float(sum(self.agreements) / sum(self.decisions)) if self.decisions and sum(self.decisions) else None

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("shadow_gaps"), d.pop("agreed")
        d.update(mean=self.mean, std=self.std)
        if self.decisions:
            d["conversion_rate"] = self.conversion_rate
            d["conversion_rate_per_episode"] = [a / max(n, 1) for a, n in zip(self.agreements, self.decisions)]
            d["disagreement_by_q_gap"] = q_gap_profile(self.shadow_gaps, self.agreed)
        else:
            d.pop("agreements"), d.pop("decisions")
        return d


def q_gaps(q: torch.Tensor) -> torch.Tensor:
    """Q(s, a1) - Q(s, a2) per state: the best action's value minus the second best's."""
    top = q.topk(min(2, q.shape[-1]), -1).values
    return top[:, 0] - top[:, -1]


GAP_EDGES = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, float("inf"))  # bins of the Q-gap over its median


def q_gap_profile(gaps, agreed, edges=GAP_EDGES) -> dict:
    """Where an agent disagrees with its shadow, by the shadow's Q-gap g = Q(s, a1) - Q(s, a2)
    (its best and second-best action) at each decision, measured in units of the median gap
    over all decisions played (scale-free across games and networks): per bin [e_i, e_i+1) of
    g / median, the decisions, the disagreements and their rate; and the share of all
    disagreements whose gap is below the median."""
    g, ok = np.asarray(gaps, float), np.asarray(agreed, bool)
    if g.size == 0:
        return dict(decisions=0, disagreements=0, median_gap=None, below_median_share=None, bins=[])
    med = float(np.median(g))
    rel = g / med if med > 0 else np.where(g > 0, np.inf, 0.0)
    miss = ~ok
    bins = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (rel >= lo) & (rel < hi)
        n, k = int(inside.sum()), int((inside & miss).sum())
        bins.append(dict(gap_over_median=[lo, None if hi == float("inf") else hi], decisions=n, disagreements=k,
                         disagreement_rate=round(k / n, 5) if n else None))
    k = int(miss.sum())
    return dict(decisions=int(g.size), disagreements=k, median_gap=med,
                below_median_share=round(float((miss & (g < med)).sum()) / k, 5) if k else None, bins=bins)


class _Episode:
    """One environment running its share of the episodes."""

    def __init__(self, env, episode_ids: list[int], seed: int, noop_max: int):
        self.env, self.queue, self.seed, self.noop_max = env, list(episode_ids), seed, noop_max
        self.noop = noop_action(env)
        self.obs = None

    def start(self) -> bool:
        if not self.queue:
            return False
        self.id = self.queue.pop(0)
        self.rng = np.random.default_rng([self.seed, self.id])
        self.obs, _ = self.env.reset(seed=int(self.rng.integers(2**31)))
        self.ret, self.len, self.agree, self.decisions = 0.0, 0, 0, 0
        if self.noop is not None:
            for _ in range(int(self.rng.integers(0, self.noop_max + 1))):
                self.obs, r, term, trunc, _ = self.env.step(self.noop)
                self.ret += float(r)
                self.len += 1
                if term or trunc:
                    self.obs, _ = self.env.reset()
        return True


def _check_protocol(episodes: int, epsilon: float, noop_max: int, max_episode_steps: int | None,
                    num_envs: int, seed: int) -> None:
    if episodes < 1:
        raise SpikeverseError(f"episodes must be >= 1, got {episodes}")
    if not 0.0 <= epsilon <= 1.0:
        raise SpikeverseError(f"epsilon must be in [0, 1], got {epsilon}")
    if noop_max < 0:
        raise SpikeverseError(f"noop_max must be >= 0, got {noop_max}")
    if max_episode_steps is not None and max_episode_steps < 1:
        raise SpikeverseError(f"max_episode_steps must be >= 1 (or None: the env's own limit), got {max_episode_steps}")
    if num_envs < 1:
        raise SpikeverseError(f"num_envs must be >= 1, got {num_envs}")
    if int(seed) != seed or seed < 0:
        raise SpikeverseError(f"the evaluation seed must be an integer >= 0, got {seed}")


def evaluate(
    policy: Policy,
    env_id: str,
    *,
    episodes: int = 10,
    epsilon: float = 0.05,
    noop_max: int = 30,
    max_episode_steps: int | None = None,
    seed: int = 0,
    num_envs: int = 8,
    shadow: Policy | None = None,
    env_kwargs: dict | None = None,
    progress=None,
    desc: str | None = None,
    observe: Callable[[np.ndarray, list[int], list[int]], np.ndarray] | None = None,
) -> EvalResult:
    """Play ``episodes`` episodes with ``policy`` under the seed 001 protocol.

    ``progress``: None (a bar on a terminal, a line per ~10% of the episodes otherwise), True,
    False (silent), or a reporter the caller keeps (a ``Progress`` or tqdm bar: ``update(1)`` per
    episode); ``desc`` names the phase (default "evaluate ENV")."""
    _check_protocol(episodes, epsilon, noop_max, max_episode_steps, num_envs, seed)
    cap = max_episode_steps if max_episode_steps is not None else default_eval_cap(env_id)
    k = max(1, min(num_envs, episodes))
    runners = [
        _Episode(make(env_id, training=False, max_episode_steps=cap, **(env_kwargs or {})),
                 list(range(i, episodes, k)), seed, noop_max)
        for i in range(k)
    ]
    report = reporter(progress, episodes, desc or f"evaluate {env_id}", unit="episode")
    gap_log: dict[int, tuple[list[float], list[bool]]] = {}  # episode -> (shadow's Q-gaps, agreed)
    try:
        results = _play(runners, policy, shadow, epsilon, report, observe, gap_log)
    finally:
        report.close()
    for r in runners:
        r.env.close()
    order = sorted(results)
    return EvalResult(
        env=env_id,
        episodes=episodes,
        scores=[results[e][0] for e in order],
        lengths=[results[e][1] for e in order],
        epsilon=epsilon,
        noop_max=noop_max,
        noops_applied=runners[0].noop is not None,
        max_episode_steps=cap,
        agreements=[results[e][2] for e in order] if shadow is not None else [],
        decisions=[results[e][3] for e in order] if shadow is not None else [],
        shadow_gaps=[x for e in order for x in gap_log.get(e, ([], []))[0]],
        agreed=[x for e in order for x in gap_log.get(e, ([], []))[1]],
    )


def _play(runners: list[_Episode], policy: Policy, shadow: Policy | None, epsilon: float,
          report, observe=None, gap_log: dict | None = None) -> dict[int, tuple[float, int, int, int]]:
    """Step every runner until its episodes are done; per episode (return, length, agreeing
    decisions, decisions). One ``q_values`` call per step for the batch of running envs. With a
    shadow, ``gap_log[episode]`` collects the shadow's Q-gap and the agreement per decision."""
    results: dict[int, tuple[float, int, int, int]] = {}
    active = [r for r in runners if r.start()]
    while active:
        clean = np.stack([r.obs for r in active])
        seen = clean if observe is None else observe(clean, [r.id for r in active], [r.decisions for r in active])
        obs = torch.as_tensor(clean, device=policy.device)
        with torch.no_grad():
            greedy = policy.q_values(obs if observe is None else torch.as_tensor(seen, device=policy.device))
            greedy = greedy.argmax(-1).cpu().numpy()
            shadow_greedy = gaps = None
            if shadow is not None:
                q_shadow = shadow.q_values(obs.to(shadow.device)).float()
                shadow_greedy = q_shadow.argmax(-1).cpu().numpy()
                gaps = q_gaps(q_shadow).cpu().numpy()
        still = []
        for i, r in enumerate(active):
            a = int(greedy[i])
            if shadow_greedy is not None:
                same = a == int(shadow_greedy[i])
                r.agree += int(same)
                if gap_log is not None:
                    log = gap_log.setdefault(r.id, ([], []))
                    log[0].append(float(gaps[i]))
                    log[1].append(same)
            if r.rng.random() < epsilon:
                a = int(r.rng.integers(policy.num_actions))
            r.obs, rew, term, trunc, _ = r.env.step(a)
            r.ret += float(rew)
            r.len += 1
            r.decisions += 1
            if term or trunc:
                results[r.id] = (r.ret, r.len, r.agree, r.decisions)
                report.update(1, mean=round(float(np.mean([v[0] for v in results.values()])), 2))
                if r.start():
                    still.append(r)
            else:
                still.append(r)
        active = still
    return results
