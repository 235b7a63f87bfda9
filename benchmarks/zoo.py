"""A zoo of DQNs trained elsewhere (issue 16): Q-networks that spikeverse's trainer did not make,
for judging conversion on inputs nobody here tuned it for. Every member is trained by this script
into a cache folder (benchmarks/runs/zoo/NAME/), never downloaded:

    NAME/model.pth          the Q-network's state dict (torch.save, as its trainer writes it)
    NAME/train_states.npy   20,000 observations drawn from its replay memory at the end of training
    NAME/member.json        how it was trained, its wall time, and its greedy score (20 episodes)

Two trainers:
- ``cleanrl``: a single-file DQN written the way CleanRL's ``dqn.py`` is (plain PyTorch loop, its own
  replay arrays, gymnasium's env with its own seeding, a Sequential ``network`` in a module, MSE or
  smooth-L1 TD loss, hard target copies, linear epsilon decay). It shares no code with spikeverse.
- ``sb3``: Stable-Baselines3's DQN with the rl-baselines3-zoo hyperparameters, run in a throwaway
  venv (``--sb3-python``; SB3 is never a spikeverse dependency); its model zip holds ``policy.pth``.

    python benchmarks/zoo.py --sb3-python /tmp/sb3venv/bin/python    # train what is missing
    python benchmarks/zoo.py --report    # rewrite results/zoo.md (the members and their scores) from its JSON

A member that exists is skipped; a killed training starts that member over (each takes minutes).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _results import RESULTS, RUNS, rewrite_reports, write_report

ZOO = RUNS / "zoo"
TRAIN_STATES = 20_000

# name -> (trainer, env, options). CleanRL's dqn.py defaults are 120-84, MSE, lr 2.5e-4, target every
# 500 steps, a step of batch 128 every 10, epsilon 1 -> 0.05 over half the run, 10k steps before learning.
MEMBERS: dict[str, tuple[str, str, dict]] = {
    "cartpole-cleanrl-120-84-mse": ("cleanrl", "CartPole-v1", dict(hidden=(120, 84), loss="mse", total_steps=100_000,
                                                                     lr=2.5e-4, seed=1)),
    "cartpole-cleanrl-128-128-huber": ("cleanrl", "CartPole-v1", dict(hidden=(128, 128), loss="smooth_l1",
                                                                        total_steps=60_000, lr=1e-3, seed=2,
                                                                        learning_starts=1_000, exploration_fraction=0.2,
                                                                        train_frequency=2, target_network_frequency=200)),
    "cartpole-cleanrl-64-64-mse": ("cleanrl", "CartPole-v1", dict(hidden=(64, 64), loss="mse", total_steps=100_000,
                                                                    lr=5e-4, seed=3, target_network_frequency=250)),
    "cartpole-sb3-zoo": ("sb3", "CartPole-v1", dict(seed=4)),
    "acrobot-cleanrl-128-128-huber": ("cleanrl", "Acrobot-v1", dict(hidden=(128, 128), loss="smooth_l1",
                                                                      total_steps=100_000, lr=6.3e-4, seed=5,
                                                                      learning_starts=1_000, train_frequency=4,
                                                                      target_network_frequency=250,
                                                                      exploration_fraction=0.12, end_e=0.1)),
    "acrobot-sb3-zoo": ("sb3", "Acrobot-v1", dict(seed=6)),
    # MinAtar's paper network (conv 16 3x3, 128 units) on minatar's own Environment (its minimal action
    # set, channels first as MinAtar's examples permute them), Huber loss, Adam; 32 samples per frame
    # (MinAtar's replay ratio) as 128 every 4 frames, epsilon 1 -> 0.1 over the first 100k frames
    "breakout-cleanrl-minatar-cnn": ("cleanrl", "MinAtar/Breakout", dict(
        hidden=(128,), conv=16, loss="smooth_l1", total_steps=1_000_000, lr=2.5e-4, seed=8, buffer_size=100_000,
        learning_starts=5_000, train_frequency=4, target_network_frequency=1_000, end_e=0.1,
        exploration_fraction=0.1)),
}

# rl-baselines3-zoo hyperparams/dqn.yml
SB3_HYPERPARAMS = {
    "CartPole-v1": dict(n_timesteps=50_000, learning_rate=2.3e-3, batch_size=64, buffer_size=100_000,
                        learning_starts=1000, gamma=0.99, target_update_interval=10, train_freq=256,
                        gradient_steps=128, exploration_fraction=0.16, exploration_final_eps=0.04, net_arch=[256, 256]),
    "Acrobot-v1": dict(n_timesteps=100_000, learning_rate=6.3e-4, batch_size=128, buffer_size=50_000,
                       learning_starts=0, gamma=0.99, target_update_interval=250, train_freq=4, gradient_steps=-1,
                       exploration_fraction=0.12, exploration_final_eps=0.1, net_arch=[256, 256]),
}


class MinAtarGym:
    """minatar's own ``Environment`` behind the two calls the loop uses (reset, step), observations
    channels first as MinAtar's examples permute them, actions indexing its minimal action set."""

    def __init__(self, env_id: str, seed: int):
        from minatar import Environment

        self.game = Environment(env_id.split("/")[1].lower())
        self.game.seed(seed)
        self.actions = self.game.minimal_action_set()
        h, w, c = self.game.state_shape()
        self.shape, self.n = (c, h, w), len(self.actions)
        self.rng = np.random.default_rng(seed)

    def _obs(self) -> np.ndarray:
        return np.transpose(self.game.state(), (2, 0, 1)).astype(np.float32)

    def reset(self, seed: int | None = None):
        self.game.reset()
        return self._obs(), {}

    def step(self, action: int):
        reward, terminal = self.game.act(self.actions[int(action)])
        return self._obs(), float(reward), bool(terminal), False, {}

    def sample(self) -> int:
        return int(self.rng.integers(self.n))


def train_cleanrl(env_id: str, out: Path, *, seed: int, hidden: tuple[int, ...], loss: str, total_steps: int,
                  lr: float, buffer_size: int = 10_000, batch_size: int = 128, gamma: float = 0.99,
                  target_network_frequency: int = 500, train_frequency: int = 10, learning_starts: int = 10_000,
                  start_e: float = 1.0, end_e: float = 0.05, exploration_fraction: float = 0.5,
                  conv: int | None = None) -> dict:
    """CleanRL-style DQN: y = r + gamma (1 - done) max_a' Q_target(s', a'); loss(Q(s, a), y).
    ``conv``: a 3x3 convolution with that many channels first (MinAtar's network)."""
    import gymnasium as gym
    import torch
    from torch import nn

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    if env_id.startswith("MinAtar/"):
        env = MinAtarGym(env_id, seed)
        shape, n_act, sample = env.shape, env.n, env.sample
    else:
        env = gym.make(env_id)
        shape, n_act, sample = env.observation_space.shape, int(env.action_space.n), env.action_space.sample
    n_obs = int(np.prod(shape))

    class QNetwork(nn.Module):
        def __init__(self):
            super().__init__()
            layers: list[nn.Module] = []
            width = n_obs
            if conv:
                layers += [nn.Conv2d(shape[0], conv, 3), nn.ReLU(), nn.Flatten()]
                width = conv * (shape[1] - 2) * (shape[2] - 2)
            sizes = (width, *hidden)
            for a, b in zip(sizes, sizes[1:]):
                layers += [nn.Linear(a, b), nn.ReLU()]
            self.network = nn.Sequential(*layers, nn.Linear(sizes[-1], n_act))

        def forward(self, x):
            return self.network(x)

    q, target = QNetwork(), QNetwork()
    target.load_state_dict(q.state_dict())
    opt = torch.optim.Adam(q.parameters(), lr=lr)
    crit = nn.MSELoss() if loss == "mse" else nn.SmoothL1Loss()
    obs_buf = np.zeros((buffer_size, *shape), np.float32)
    nxt_buf = np.zeros_like(obs_buf)
    act_buf = np.zeros(buffer_size, np.int64)
    rew_buf = np.zeros(buffer_size, np.float32)
    done_buf = np.zeros(buffer_size, np.float32)
    size = ptr = 0
    obs, _ = env.reset(seed=seed)
    if not env_id.startswith("MinAtar/"):
        env.action_space.seed(seed)
    t0 = time.perf_counter()
    for step in range(total_steps):
        if step % max(1, total_steps // 10) == 0:
            print(f"{env_id}: step {step}/{total_steps}, {time.perf_counter() - t0:.0f} s", flush=True)
        eps = max(end_e, start_e + (end_e - start_e) * step / (exploration_fraction * total_steps))
        if rng.random() < eps:
            action = sample()
        else:
            with torch.no_grad():
                action = int(q(torch.as_tensor(obs, dtype=torch.float32)[None]).argmax())
        nxt, rew, term, trunc, _ = env.step(action)
        obs_buf[ptr], nxt_buf[ptr], act_buf[ptr], rew_buf[ptr], done_buf[ptr] = obs, nxt, action, rew, float(term)
        ptr, size = (ptr + 1) % buffer_size, min(size + 1, buffer_size)
        obs = nxt
        if term or trunc:
            obs, _ = env.reset()
        if step > learning_starts and step % train_frequency == 0:
            idx = rng.integers(0, size, batch_size)
            with torch.no_grad():
                y = torch.as_tensor(rew_buf[idx]) + gamma * target(torch.as_tensor(nxt_buf[idx])).max(1).values * (
                    1 - torch.as_tensor(done_buf[idx]))
            pred = q(torch.as_tensor(obs_buf[idx])).gather(1, torch.as_tensor(act_buf[idx])[:, None]).squeeze(1)
            opt.zero_grad()
            crit(pred, y).backward()
            opt.step()
        if step % target_network_frequency == 0:
            target.load_state_dict(q.state_dict())
    wall = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    torch.save(q.state_dict(), out / "model.pth")
    keep = rng.choice(size, min(size, TRAIN_STATES), replace=False)
    np.save(out / "train_states.npy", obs_buf[keep])
    return dict(wall_s=round(wall, 1), steps=total_steps)


SB3_SCRIPT = r"""
import json, sys, time
import numpy as np
from stable_baselines3 import DQN
env_id, out, seed, hp = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
hp = dict(hp); steps = hp.pop("n_timesteps"); arch = hp.pop("net_arch")
model = DQN("MlpPolicy", env_id, policy_kwargs=dict(net_arch=arch), seed=seed, device="cpu", verbose=0, **hp)
t0 = time.perf_counter()
model.learn(total_timesteps=steps)
wall = time.perf_counter() - t0
model.save(out + "/model.zip")
buf = model.replay_buffer
n = buf.buffer_size if buf.full else buf.pos
obs = buf.observations[:n].reshape(n, -1).astype(np.float32)
keep = np.random.default_rng(seed).choice(n, min(n, %d), replace=False)
np.save(out + "/train_states.npy", obs[keep])
print(json.dumps(dict(wall_s=round(wall, 1), steps=steps)))
""" % TRAIN_STATES


def train_sb3(env_id: str, out: Path, *, seed: int, python: str) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    res = subprocess.run([python, "-c", SB3_SCRIPT, env_id, str(out), str(seed), json.dumps(SB3_HYPERPARAMS[env_id])],
                         capture_output=True, text=True, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    if res.returncode != 0:
        raise SystemExit(f"SB3 training failed: {(res.stderr.strip().splitlines() or ['?'])[-1]}")
    import zipfile

    with zipfile.ZipFile(out / "model.zip") as z:  # the policy's state dict, as convert --state-dict reads it
        (out / "model.pth").write_bytes(z.read("policy.pth"))
    return json.loads(res.stdout.strip().splitlines()[-1])


def greedy_score(name: str) -> dict:
    """The member's own play under the seed 001 protocol (20 episodes, epsilon 0.05), through
    spikeverse's state-dict loader (what ``convert --state-dict`` sees)."""
    from spikeverse.convert.graph import env_io, from_state_dict, load_state_dict_file
    from spikeverse.rl.evaluation import evaluate

    _, env_id, _ = MEMBERS[name]
    shape, n_act, scale = env_io(env_id)
    net = from_state_dict(load_state_dict_file(ZOO / name / "model.pth"), shape, n_act, scale)
    res = evaluate(net, env_id, episodes=20, seed=7000, progress=False)
    return dict(eval_mean=round(res.mean, 2), eval_std=round(res.std, 2))


def render(d: dict) -> str:
    lines = ["# The zoo: DQNs trained elsewhere (issue 16)", "",
             f"`{d['command']}`: each member trained once into benchmarks/runs/zoo/NAME/ by the trainer named "
             "(cleanrl: this script's CleanRL-style loop; sb3: Stable-Baselines3 with the rl-zoo hyperparameters, "
             "in a throwaway venv), one torch thread. Score: its own play, 20 episodes (seed 7000), epsilon 0.05, "
             "through spikeverse's state-dict loader.", "",
             "| member | trainer | env | steps | wall s | score |", "|---|---|---|---|---|---|"]
    lines += [f"| {m['name']} | {m['trainer']} | {m['env']} | {m['steps']} | {m['wall_s']} | "
              f"{m['eval_mean']:.1f} +- {m['eval_std']:.1f} |" for m in d["members"]]
    return "\n".join(lines) + "\n"


REPORTS = {"zoo": render}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--members", nargs="+", choices=list(MEMBERS), default=list(MEMBERS))
    ap.add_argument("--sb3-python", help="a venv's python with stable-baselines3 (skips the sb3 members without it)")
    ap.add_argument("--report", action="store_true")
    args = ap.parse_args()
    if args.report:
        rewrite_reports(REPORTS)
        return
    import torch

    torch.set_num_threads(1)
    for name in args.members:
        trainer, env_id, opts = MEMBERS[name]
        out = ZOO / name
        if (out / "member.json").exists():
            continue
        if trainer == "sb3" and not args.sb3_python:
            print(f"{name}: skipped (no --sb3-python)", file=sys.stderr)
            continue
        print(f"training {name} ...", flush=True)
        info = (train_cleanrl(env_id, out, **opts) if trainer == "cleanrl"
                else train_sb3(env_id, out, seed=opts["seed"], python=args.sb3_python))
        info = dict(name=name, trainer=trainer, env=env_id, options=opts, **info, **greedy_score(name))
        (out / "member.json").write_text(json.dumps(info, indent=1))
        print(info, flush=True)
    members = [json.loads((ZOO / n / "member.json").read_text()) for n in MEMBERS if (ZOO / n / "member.json").exists()]
    if members:
        write_report("zoo", dict(command="python benchmarks/zoo.py --sb3-python PYTHON", members=members), render)
        print(f"wrote {RESULTS / 'zoo.md'}")


if __name__ == "__main__":
    main()
