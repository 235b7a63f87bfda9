"""The command line: train -> evaluate -> resume, crash safety, one-line errors with exit code 2."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from spikeverse.cli.app import main
from spikeverse.io.checkpoint import load_checkpoint, save_checkpoint
from spikeverse.io.rundir import read_metrics

FAST = ["--env", "CartPole-v1", "--eval-every", "0", "--device", "cpu", "--no-progress"]


def run_cli(capsys, *args):
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_train_evaluate_and_resume(tmp_path, capsys):
    d = tmp_path / "run"
    rc, out, _ = run_cli(capsys, "train", *FAST, "--steps", 1500, "--out", d, "--json")
    assert rc == 0
    summary = json.loads(out)
    assert summary["steps"] == 1500 and summary["resumed_from"] == 0
    assert (d / "config.yaml").is_file() and (d / "checkpoint.safetensors").is_file()
    cfg_text = (d / "config.yaml").read_text()
    for key in ("gamma:", "buffer_size:", "target_update_interval:", "dueling: false", "nstep: 1"):
        assert key in cfg_text  # every default is written out
    rows = read_metrics(d)
    assert rows and set(rows[0]) >= {"step", "episode_return", "loss", "epsilon", "steps_per_s"}
    wall_before = load_checkpoint(d / "checkpoint.safetensors")[1]["wall_s"]
    assert wall_before + 0.01 >= float(rows[-1]["wall_s"]) > 0  # CSV rounds to 0.01 s

    rc, out, _ = run_cli(capsys, "evaluate", d, "--episodes", 3, "--json")
    assert rc == 0
    res = json.loads(out)
    assert {"env", "episodes", "mean", "std", "scores"} <= set(res)
    assert res["env"] == "CartPole-v1" and len(res["scores"]) == 3

    def adam_step() -> float:
        tensors, _ = load_checkpoint(d / "checkpoint.safetensors")
        return float(next(v for k, v in tensors.items() if k.startswith("optim.") and k.endswith(".step")))

    updates_before = adam_step()  # 4 envs: an update per 4 steps from learning_starts (1000) to 1500
    rc, out, _ = run_cli(capsys, "train", *FAST, "--steps", 4000, "--out", d, "--json")
    assert rc == 0
    summary = json.loads(out)
    assert summary["resumed_from"] == 1500 and summary["steps"] == 4000
    steps = [int(r["step"]) for r in read_metrics(d)]
    assert steps == sorted(steps) and steps[-1] <= 4000
    resumed_walls = [float(r["wall_s"]) for r in read_metrics(d) if int(r["step"]) > 1500]
    assert resumed_walls and min(resumed_walls) >= wall_before - 0.01  # wall time counts on across the resume
    # the optimiser went on from its saved state; the resumed run refills 1000 steps before updating
    assert updates_before == len(range(1000, 1501, 4))
    assert adam_step() == updates_before + len(range(2500, 4001, 4))


def test_resume_with_other_options_is_refused(tmp_path, capsys):
    d = tmp_path / "run"
    assert run_cli(capsys, "train", *FAST, "--steps", 300, "--out", d)[0] == 0
    rc, _, err = run_cli(capsys, "train", *FAST, "--steps", 600, "--out", d, "--dueling")
    assert rc == 2 and "dueling" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--env", "NoSuchEnv-v9"], "unknown environment"),
        (["train", "--env", "CartPole-v1", "--steps", "-5"], "steps"),
        (["train", "--env", "CartPole-v1", "--nstep", "0"], "nstep"),
        (["train", "--env", "CartPole-v1", "--steps", "abc"], "steps"),
        (["train", "--env", "CartPole-v1", "--device", "tpu"], "device"),
        (["evaluate", "/nonexistent/run"], "no run directory"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(capsys, args, message):
    rc, _, err = run_cli(capsys, *args)
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and message in err and "Traceback" not in err


def test_bad_checkpoints(tmp_path, capsys):
    d = tmp_path / "run"
    assert run_cli(capsys, "train", *FAST, "--steps", 300, "--out", d)[0] == 0
    ckpt = d / "checkpoint.safetensors"
    good = ckpt.read_bytes()
    # architecture mismatch: the metadata says one hidden width, the tensors have another
    tensors, meta = load_checkpoint(ckpt)
    meta["network"]["hidden"] = [64, 64]
    save_checkpoint(ckpt, tensors, {k: v for k, v in meta.items() if k not in ("format", "version")})
    rc, _, err = run_cli(capsys, "evaluate", d)
    assert rc == 2 and "architecture mismatch" in err and len(err.strip().splitlines()) == 1
    ckpt.write_bytes(good[:1000])  # truncated
    rc, _, err = run_cli(capsys, "evaluate", d)
    assert rc == 2 and "truncated" in err
    ckpt.write_bytes(good[:1000])
    rc, _, err = run_cli(capsys, "train", *FAST, "--steps", 600, "--out", d)
    assert rc == 2 and "truncated" in err
    from safetensors.torch import save_file

    save_file({"weight": torch.ones(2, 2)}, str(ckpt))  # a foreign safetensors file
    rc, _, err = run_cli(capsys, "evaluate", d)
    assert rc == 2 and "not a spikeverse checkpoint" in err


def test_console_script_error_has_no_traceback(tmp_path):
    exe = os.path.join(os.path.dirname(sys.executable), "spikeverse")
    p = subprocess.run([exe, "train", "--env", "Nope-v0"], capture_output=True, text=True)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().startswith("error: unknown environment")


def test_sigkill_always_leaves_a_loadable_checkpoint(tmp_path):
    d = tmp_path / "run"
    ckpt = d / "checkpoint.safetensors"
    exe = os.path.join(os.path.dirname(sys.executable), "spikeverse")
    cmd = [exe, "train", *FAST, "--steps", "400000", "--checkpoint-every", "50", "--out", str(d)]
    last_step = 0
    for extra in (0.05, 0.2, 0.37):
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        # wait until this process has written checkpoints of its own, then kill it mid-run
        while time.time() < deadline and (not ckpt.exists() or load_checkpoint(ckpt)[1]["step"] <= last_step + 100):
            time.sleep(0.05)
        time.sleep(extra)
        p.send_signal(signal.SIGKILL)
        p.wait()
        _, meta = load_checkpoint(ckpt)  # raises if the kill left a broken file
        assert meta["step"] > last_step  # each run resumed from the previous one and went on
        last_step = meta["step"]


def test_default_cartpole_agent_balances(tmp_path, capsys):
    """`spikeverse train --env CartPole-v1` with no other flag solves it (about 40 s)."""
    d = tmp_path / "cp"
    assert run_cli(capsys, "train", "--env", "CartPole-v1", "--out", d, "--no-progress")[0] == 0
    rc, out, _ = run_cli(capsys, "evaluate", d, "--episodes", 10, "--json", "--seed", 123)
    res = json.loads(out)
    assert rc == 0 and res["mean"] >= 475, res["scores"]


def test_tabular_taxi_through_the_cli(tmp_path, capsys):
    d = tmp_path / "taxi"
    rc, out, _ = run_cli(capsys, "train", "--env", "Taxi-v3", "--out", d, "--json")
    assert rc == 0 and json.loads(out)["agent"] == "tabular"
    rc, out, _ = run_cli(capsys, "evaluate", d, "--episodes", 100, "--epsilon", 0, "--json")
    res = json.loads(out)
    assert rc == 0 and res["agent"] == "tabular" and res["mean"] >= 7


def test_a_resume_goes_on_with_the_options_the_run_was_trained_with(tmp_path, capsys):
    """Options not given on a resume come from the run's config (a default may have changed since);
    an option given with another value is still refused."""
    import yaml

    d = tmp_path / "r"
    loop = ["--num-envs", 1, "--batch-size", 32, "--train-freq", 2, "--hidden", 16]
    assert run_cli(capsys, "train", *FAST, *loop, "--steps", 1200, "--out", d, "--json")[0] == 0
    rc, out, _ = run_cli(capsys, "train", *FAST, "--hidden", 16, "--steps", 1600, "--out", d, "--json")
    assert rc == 0 and json.loads(out)["resumed_from"] == 1200
    config = yaml.safe_load((d / "config.yaml").read_text())
    assert (config["num_envs"], config["batch_size"], config["train_freq"]) == (1, 32, 2)
    rc, _, err = run_cli(capsys, "train", *FAST, "--hidden", 16, "--num-envs", 2, "--steps", 2000, "--out", d)
    assert rc == 2 and "num_envs" in err
