"""The DQN agent: online and target Q-networks and the TD update, with every Rainbow part as a
switch of this one class (SPEC R-RL-DQN, R-RL-DDQN, R-RL-PER, R-RL-DUEL, R-RL-NSTEP, R-RL-NOISY,
R-RL-C51; seed 000 sec. 2-3).

Transitions come as (s, a, R, s', d) with d the bootstrap discount: gamma^n, or 0 if the episode
terminated inside the n-step window (truncation still bootstraps).
- target, scalar Q:   y = R + d * Q_target(s', a*),
  a* = argmax_a Q_target(s', a) (DQN) or argmax_a Q_online(s', a) (double DQN, van Hasselt 2016);
  loss = w * Huber(y - Q(s, a)) (or squared), w the PER importance weights (1 without PER).
- target, C51: m = Phi(R + d * Z_target(s', a*)) (projection on the support), loss =
  w * KL-cross-entropy -sum_j m_j log p_j(s, a); its value is the new PER priority.
- target network: hard copy every C steps (``polyak_tau`` = 1) or Polyak averaging after every
  update, theta' <- tau theta + (1 - tau) theta' with tau = ``polyak_tau``.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from spikeverse.rl.config import DQNConfig
from spikeverse.rl.distributional import project_distribution
from spikeverse.rl.networks import NetworkSpec, QNetwork


def network_spec(cfg: DQNConfig, obs_shape: tuple[int, ...], num_actions: int, obs_scale: float = 1.0) -> NetworkSpec:
    return NetworkSpec(
        arch=cfg.arch, obs_shape=tuple(obs_shape), num_actions=num_actions, hidden=tuple(cfg.hidden),
        dueling=cfg.dueling, noisy=cfg.noisy, noisy_sigma0=cfg.noisy_sigma0,
        atoms=cfg.atoms if cfg.c51 else 1, v_min=cfg.v_min, v_max=cfg.v_max, obs_scale=obs_scale,
        spiking=cfg.spiking,
    )


class DQNAgent:
    """Online/target networks, optimiser and the TD update."""

    def __init__(self, cfg: DQNConfig, spec: NetworkSpec, device: torch.device):
        self.cfg, self.spec, self.device = cfg, spec, device
        self.online = QNetwork(spec).to(device)
        self.target = copy.deepcopy(self.online)
        self.target.requires_grad_(False)
        # the fused kernel is faster than the loop for the many small tensors of RL networks
        self.optimizer = torch.optim.Adam(self.online.parameters(), lr=cfg.lr, eps=cfg.adam_eps, fused=True)

    @property
    def num_actions(self) -> int:
        return self.spec.num_actions

    def act(self, obs: np.ndarray, epsilon: float, rng: np.random.Generator) -> np.ndarray:
        """Epsilon-greedy actions for a batch; with noisy nets, greedy under fresh noise."""
        x = torch.as_tensor(obs, device=self.device)
        with torch.no_grad():
            if self.cfg.noisy:
                self.online.reset_noise()
            greedy = self.online(x).argmax(-1).cpu().numpy()
        if self.cfg.noisy or epsilon <= 0:
            return greedy
        explore = rng.random(len(greedy)) < epsilon
        return np.where(explore, rng.integers(self.num_actions, size=len(greedy)), greedy)

    def update(self, batch: dict[str, np.ndarray]) -> tuple[float, np.ndarray]:
        """One gradient step on a sampled batch; returns (loss, new priorities |delta|). With
        ``precision`` bfloat16 the forward and backward passes run under ``torch.autocast``
        (convolutions and matrix products in bfloat16, the loss in float32); weights and Adam
        stay float32."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.precision == "bfloat16"):
            loss, priority = self._loss(batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.online.parameters(), self.cfg.max_grad_norm)
        self.optimizer.step()
        return float(loss.item()), priority.cpu().numpy()

    def _loss(self, batch: dict[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """The weighted TD loss of a batch and its per-sample priorities."""
        dev = self.device
        obs = torch.as_tensor(batch["obs"], device=dev)
        act = torch.as_tensor(batch["action"], device=dev, dtype=torch.int64)
        rew = torch.as_tensor(batch["reward"], device=dev, dtype=torch.float32)
        nxt = torch.as_tensor(batch["next_obs"], device=dev)
        disc = torch.as_tensor(batch["discount"], device=dev, dtype=torch.float32)
        weights = torch.as_tensor(batch["weights"], device=dev, dtype=torch.float32)
        if self.cfg.noisy:
            self.online.reset_noise()
            self.target.reset_noise()
        rows = torch.arange(len(act), device=dev)
        if self.spec.atoms > 1:
            per_sample = self._c51_loss(obs, act, rew, nxt, disc, rows).float()
            priority = per_sample.detach()
        else:
            q = self.online(obs)[rows, act].float()
            with torch.no_grad():
                y = rew + disc * self._next_value(nxt, rows).float()
            td = y - q
            per_sample = F.smooth_l1_loss(q, y, reduction="none") if self.cfg.loss == "huber" else td.pow(2)
            priority = td.detach().abs()
        return (weights * per_sample).mean(), priority

    def _next_action(self, q_target_next: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        """a* = argmax Q_online(s') for double DQN, argmax Q_target(s') otherwise."""
        if self.cfg.double:
            return self.online(nxt).argmax(-1)
        return q_target_next.argmax(-1)

    def _next_value(self, nxt: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        q_next = self.target(nxt)
        return q_next[rows, self._next_action(q_next, nxt)]

    def _c51_loss(self, obs, act, rew, nxt, disc, rows) -> torch.Tensor:
        log_p = self.online.log_probs(obs)[rows, act].float()
        with torch.no_grad():
            next_probs = self.target.log_probs(nxt).float().exp()
            q_next = (next_probs * self.target.support).sum(-1)
            a_star = self._next_action(q_next, nxt)
            target = project_distribution(next_probs[rows, a_star], rew, disc, self.target.support)
        return -(target * log_p).sum(-1)

    @torch.no_grad()
    def update_target(self) -> None:
        """theta' <- tau theta + (1 - tau) theta' with tau = ``polyak_tau`` (1: hard copy)."""
        tau = self.cfg.polyak_tau
        for p_t, p in zip(self.target.parameters(), self.online.parameters()):
            p_t.lerp_(p, tau) if tau < 1.0 else p_t.copy_(p)
        for b_t, b in zip(self.target.buffers(), self.online.buffers()):
            b_t.copy_(b)

    def state(self) -> dict[str, Any]:
        return {"online": self.online.state_dict(), "target": self.target.state_dict()}
