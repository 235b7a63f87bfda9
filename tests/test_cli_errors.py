"""Bad input on every command of the CLI (issue 11): exit code 2, exactly one line on stderr that
starts with ``error:``, no traceback, nothing written into the output directory and no run
directory changed. One row per bad invocation; the tiny runs they point at are made once per
module. Options a method or agent does not take are refused (rows), those it takes are applied
(tests at the end)."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from spikeverse.cli.app import main
from spikeverse.errors import SpikeverseError
from spikeverse.io.checkpoint import load_checkpoint, save_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

Q = ["--no-progress"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, one_thread):
    """Tiny runs of every kind, and broken copies of them (built once: about 10 s)."""
    root = tmp_path_factory.mktemp("runs")
    r = {k: root / k for k in ("dqn", "tab", "snn", "ga", "corrupt", "truncated", "nan_ckpt", "badcfg", "strcfg",
                               "cfgonly", "cfgbroken", "pipe")}
    ok = [
        ["train", "--env", "CartPole-v1", "--steps", "200", "--eval-every", "0", "--out", r["dqn"], *Q],
        ["train", "--env", "Taxi-v3", "--steps", "20", "--out", r["tab"], *Q],
        ["convert", r["dqn"], "--frames", "100", "--timesteps", "4", "--out", r["snn"], *Q],
        ["evolve", "--population", "4", "--generations", "1", "--out", r["ga"], *Q],
    ]
    for argv in ok:
        assert main([str(a) for a in argv]) == 0, argv
    ckpt = r["dqn"] / "checkpoint.safetensors"
    for name in ("corrupt", "truncated", "nan_ckpt", "badcfg", "strcfg"):
        r[name].mkdir()
        for f in r["dqn"].iterdir():
            (r[name] / f.name).write_bytes(f.read_bytes())
    (r["corrupt"] / "checkpoint.safetensors").write_bytes(os.urandom(4096))  # random bytes (was: OverflowError)
    data = ckpt.read_bytes()
    (r["truncated"] / "checkpoint.safetensors").write_bytes(data[: len(data) // 2])
    tensors, meta = load_checkpoint(ckpt)
    tensors = dict(tensors)
    key = next(k for k in tensors if k.startswith("online.") and tensors[k].is_floating_point())
    tensors[key] = torch.full_like(tensors[key], float("nan"))
    save_checkpoint(r["nan_ckpt"] / "checkpoint.safetensors", tensors, meta)
    (r["badcfg"] / "config.yaml").write_text("agent: [dqn\n  :: {")  # not YAML
    (r["strcfg"] / "config.yaml").write_text("garbage\n")  # YAML, but not a mapping
    r["cfgbroken"].mkdir()  # a broken config.yaml and nothing else
    (r["cfgbroken"] / "config.yaml").write_text("{{{")
    r["cfgonly"].mkdir()  # a DQN run killed before its first checkpoint
    (r["cfgonly"] / "config.yaml").write_text((r["dqn"] / "config.yaml").read_text())
    (r["pipe"] / "dqn").mkdir(parents=True)  # `spikeverse run` OUT whose DQN run has a broken config
    (r["pipe"] / "dqn" / "config.yaml").write_text("{{{")
    sd = {"0.weight": torch.full((8, 4), float("nan")), "0.bias": torch.zeros(8),
          "2.weight": torch.zeros(2, 8), "2.bias": torch.zeros(2)}
    r["nan_pth"] = root / "nan.pth"
    torch.save(sd, r["nan_pth"])
    r["garbage_pth"] = root / "garbage.pth"
    r["garbage_pth"].write_bytes(os.urandom(512))
    r["notimage"] = root / "notimage.png"
    r["notimage"].write_text("not a png")
    frames = {"npy_garbage": None, "npy_truncated": np.zeros((50, 4), np.float32), "npy_object": np.array([{}, None]),
              "npy_shape": np.zeros((10, 5)), "npy_empty": np.zeros((0, 4)), "npy_str": np.full((3, 4), "a"),
              "npy_nan": np.array([[0.0, 1.0, np.nan, 0.0]]), "npy_inf": np.array([[0.0, -np.inf, 0.0, 0.0]])}
    for name, array in frames.items():  # --frames-from files (CartPole frames are [N, 4])
        r[name] = root / f"{name}.npy"
        if array is None:
            r[name].write_bytes(os.urandom(256))
        else:
            np.save(r[name], array, allow_pickle=array.dtype == object)
    r["npy_truncated"].write_bytes(r["npy_truncated"].read_bytes()[:300])
    r["afile"] = root / "afile"
    r["afile"].write_text("a file where a directory should go")
    r["root"] = root
    return r


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# (command line, words the one error line holds); {name} is a run of the fixture, {out} a fresh path
ROWS = [
    # evaluate
    ("evaluate {dqn} --max-episode-steps 0", "max_episode_steps"),
    ("evaluate {dqn} --num-envs 0", "num_envs"),
    ("evaluate {dqn} --episodes 0", "episodes"),
    ("evaluate {dqn} --epsilon 1.5", "epsilon"),
    ("evaluate {dqn} --noop-max -1", "noop_max"),
    ("evaluate {dqn} --timesteps 4", "--timesteps"),
    ("evaluate {dqn} --readout rate", "--readout"),
    ("evaluate {dqn} --device tpu", "device"),
    ("evaluate {dqn} --seed -1", "seed"),
    ("evaluate {snn} --timesteps 0", "timesteps"),
    ("evaluate {snn} --readout bogus", "readout"),
    ("evaluate {tab} --timesteps 4", "--timesteps"),
    ("evaluate {out}", "no run directory"),
    ("evaluate {cfgonly}", "no checkpoint"),
    ("evaluate {corrupt}", "truncated or corrupted"),
    ("evaluate {truncated}", "truncated or corrupted"),
    ("evaluate {nan_ckpt}", "NaN"),
    # convert: bad values and sources
    ("convert --state-dict {nan_pth} --env CartPole-v1 --frames 100 --out {out}", "NaN"),
    ("convert --state-dict {garbage_pth} --env CartPole-v1 --out {out}", "not a loadable"),
    ("convert --state-dict {out} --env CartPole-v1", "no state dict file"),
    ("convert --state-dict {nan_pth} --out {out}", "--env"),
    ("convert --out {out}", "run directory"),
    ("convert {dqn} --method bogus --out {out}", "unknown conversion method"),
    ("convert {dqn} --frames 0 --out {out}", "--frames"),
    ("convert {dqn} --timesteps 0 --out {out}", "timesteps"),
    ("convert {dqn} --readout bogus --out {out}", "readout"),
    ("convert {dqn} --percentile 0 --out {out}", "percentile"),
    ("convert {dqn} --epsilon 2 --out {out}", "epsilon"),
    ("convert {dqn} --seed -1 --out {out}", "--seed"),
    ("convert {dqn} --method naive --scales 0 --out {out}", "scale"),
    ("convert {dqn} --method naive --scales a,b --out {out}", "--scales"),
    ("convert {dqn} --method naive --tau 0 --out {out}", "--tau"),
    ("convert {dqn} --method fast --levels -1 --out {out}", "--levels"),
    ("convert {dqn} --method fast --v-init 1 --out {out}", "v_init"),
    ("convert {dqn} --method fast --finetune-steps 0 --out {out}", "--finetune-steps"),
    ("convert {dqn} --method fast --finetune-frames 1 --out {out}", "--finetune-frames"),
    ("convert {dqn} --method fast --finetune-cycles 0 --out {out}", "--finetune-cycles must be >= 1"),
    ("convert {dqn} --env Taxi-v3 --out {out}", "was trained on CartPole-v1"),
    ("convert {dqn} --device tpu --out {out}", "device"),
    ("convert --state-dict {nan_pth} --env Taxi-v3 --out {out}", "discrete observations"),
    ("convert --state-dict {nan_pth} --env Bogus-v0 --out {out}", "unknown environment"),
    ("convert {tab} --out {out}", "expected 'dqn'"),
    ("convert {snn} --out {out}", "expected 'dqn'"),
    ("convert {corrupt} --out {out}", "truncated or corrupted"),
    ("convert {nan_ckpt} --out {out}", "NaN"),
    ("convert {dqn} --frames 50 --out {tab}", "holds a 'tabular' run"),
    ("convert {dqn} --frames 50 --out {cfgbroken}", "config.yaml is corrupted"),
    ("convert {dqn} --frames 50 --out {badcfg}", "config.yaml is corrupted"),
    ("convert {dqn} --frames 50 --out {cfgonly}", "holds a 'dqn' run"),
    # convert --frames-from: the file is checked before any play
    ("convert {dqn} --frames-from {out}/replay.npy --out {out}", "no frames file at"),
    ("convert {dqn} --frames-from {npy_garbage} --out {out}", "is not a readable .npy file"),
    ("convert {dqn} --frames-from {npy_truncated} --out {out}", "is not a readable .npy file"),
    ("convert {dqn} --frames-from {npy_object} --out {out}", "Object arrays cannot be loaded"),
    ("convert {dqn} --frames-from {npy_shape} --out {out}", "shape (10, 5), expected (N, 4)"),
    ("convert {dqn} --frames-from {npy_empty} --out {out}", "holds no frames"),
    ("convert {dqn} --frames-from {npy_nan} --out {out}", "NaN or infinite"),
    ("convert {dqn} --method fast --frames-from {npy_inf} --out {out}", "NaN or infinite"),
    ("convert {dqn} --method naive --frames-from {npy_str} --out {out}", "not real numbers"),
    # convert: options of another method (item 2)
    ("convert {dqn} --method tan --levels 8 --out {out}", "--levels does not apply to --method tan"),
    ("convert {dqn} --method naive --levels 8 --out {out}", "--levels does not apply to --method naive"),
    ("convert {dqn} --method tan --v-init 0.2 --out {out}", "--v-init does not apply"),
    ("convert {dqn} --method tan --early-decision --out {out}", "--early-decision does not apply"),
    ("convert {dqn} --method naive --single-level --out {out}", "--single-level does not apply"),
    ("convert {dqn} --method tan --layer-wise --out {out}", "--layer-wise does not apply"),
    ("convert {dqn} --method naive --finetune-steps 5 --out {out}", "--finetune-steps does not apply"),
    ("convert {dqn} --method tan --finetune-frames 500 --out {out}", "--finetune-frames does not apply"),
    ("convert {dqn} --method naive --percentile 99 --out {out}", "--percentile does not apply to --method naive"),
    ("convert {dqn} --method tan --scales 1,2 --out {out}", "--scales does not apply to --method tan"),
    ("convert {dqn} --method fast --tau 3 --out {out}", "--tau does not apply to --method fast"),
    ("convert {dqn} --method fast --levels 0 --finetune-steps 5 --out {out}", "with --levels 0"),
    ("convert {dqn} --method fast --levels 0 --finetune-cycles 2 --out {out}", "with --levels 0"),
    ("convert {dqn} --method tan --finetune-cycles 2 --out {out}", "--finetune-cycles does not apply"),
    ("convert {dqn} --method tan --margin-scale gap --out {out}", "--margin-scale does not apply to --method tan"),
    ("convert {dqn} --method naive --finetune-epsilons 0.3 --out {out}", "--finetune-epsilons does not apply"),
    ("convert {dqn} --method fast --margin-scale mean --out {out}", "unknown margin scale"),
    ("convert {dqn} --method fast --finetune-epsilons 0.3,x --out {out}", "comma-separated numbers"),
    ("convert {dqn} --method fast --finetune-epsilons 2 --out {out}", "epsilons in [0, 1]"),
    ("convert {dqn} --method fast --levels 0 --margin-scale gap --out {out}", "with --levels 0"),
    # sweep
    ("sweep {dqn} --timesteps 0", "timesteps"),
    ("sweep {dqn} --timesteps ,", "--timesteps"),
    ("sweep {dqn} --percentiles 101", "percentile"),
    ("sweep {dqn} --episodes 0", "episodes"),
    ("sweep {dqn} --readouts bogus", "readout"),
    ("sweep {dqn} --method bogus", "unknown conversion method"),
    ("sweep {dqn} --method naive --percentiles 99", "--percentiles does not apply to --method naive"),
    ("sweep {dqn} --frames 0", "--frames"),
    ("sweep {dqn} --workers 0", "workers"),
    ("sweep {dqn} --plot {afile}", "is a file, not a folder"),
    ("sweep {tab}", "expected 'dqn'"),
    ("sweep {snn}", "expected 'dqn'"),
    ("sweep {out}", "no run directory"),
    ("sweep {corrupt}", "truncated or corrupted"),
    # train: bad values
    ("train --env Bogus-v0 --out {out}", "unknown environment"),
    ("train --agent bogus --out {out}", "unknown agent"),
    ("train --steps 0 --out {out}", "--steps"),
    ("train --steps -5 --out {out}", "--steps"),
    ("train --num-envs 0 --out {out}", "num_envs"),
    ("train --hidden 0 --out {out}", "hidden"),
    ("train --hidden 8,x --out {out}", "--hidden"),
    ("train --lr -1 --out {out}", "lr"),
    ("train --seed -1 --out {out}", "--seed"),
    ("train --env Taxi-v3 --seed -1 --out {out}", "--seed"),
    ("train --agent rstdp --seed -1 --out {out}", "--seed"),
    ("train --eval-every -1 --out {out}", "eval_interval"),
    ("train --checkpoint-every 0 --out {out}", "checkpoint_interval"),
    ("train --agent dsqn --reset bogus --out {out}", "--reset"),
    ("train --agent dsqn --init-rate 1 --out {out}", "--init-rate"),
    ("train --nstep 0 --out {out}", "--nstep"),
    ("train --device tpu --out {out}", "device"),
    ("train --arch bogus --out {out}", "architecture"),
    ("train --arch nature --out {out}", "nature CNN"),
    ("train --agent dsqn --timesteps 0 --out {out}", "--timesteps"),
    ("train --agent dsqn --surrogate bogus --out {out}", "surrogate"),
    ("train --agent dqn --timesteps 8 --out {out}", "--agent dsqn only"),
    ("train --env Taxi-v3 --agent tabular --steps 0 --out {out}", "--steps"),
    ("train --env Taxi-v3 --agent tabular --lr 2 --out {out}", "--lr"),
    ("train --agent rstdp --steps 0 --out {out}", "--steps"),
    ("train --agent rstdp --hidden 8,8 --out {out}", "one hidden layer"),
    # train: an agent that cannot work on the env's spaces, every agent x env family
    ("train --env Taxi-v3 --agent dsqn --out {out}", "Discrete(500) observations"),
    ("train --env Taxi-v3 --agent dqn --out {out}", "Discrete(500) observations"),
    ("train --env FrozenLake-v1 --agent dqn --out {out}", "Discrete(16) observations"),
    ("train --env Pendulum-v1 --agent dqn --out {out}", "discrete actions"),
    ("train --env Pendulum-v1 --agent dsqn --out {out}", "discrete actions"),
    ("train --env CartPole-v1 --agent tabular --out {out}", "discrete observations"),
    ("train --env MinAtar/Breakout --agent tabular --out {out}", "discrete observations"),
    ("train --env Pendulum-v1 --agent tabular --out {out}", "discrete observations"),
    ("train --env Taxi-v3 --agent rstdp --out {out}", "CartPole-v1 only"),
    ("train --env MinAtar/Breakout --agent rstdp --out {out}", "CartPole-v1 only"),
    ("train --env MinAtar/Breakout --arch nature --out {out}", "does not fit"),
    # train: options of another agent (item 2)
    ("train --env Taxi-v3 --agent tabular --hidden 8 --out {out}", "--hidden does not apply to --agent tabular"),
    ("train --env Taxi-v3 --agent tabular --double --no-per --out {out}", "--double, --no-per do not apply"),
    ("train --env Taxi-v3 --agent tabular --rainbow --out {out}", "--rainbow does not apply"),
    ("train --env Taxi-v3 --agent tabular --nstep 3 --out {out}", "--nstep does not apply"),
    ("train --env Taxi-v3 --agent tabular --num-envs 2 --out {out}", "--num-envs does not apply"),
    ("train --env Taxi-v3 --agent tabular --device cpu --out {out}", "--device does not apply"),
    ("train --env Taxi-v3 --agent tabular --arch mlp --out {out}", "--arch does not apply"),
    ("train --env Taxi-v3 --agent tabular --eval-every 5 --out {out}", "--eval-every does not apply"),
    ("train --env Taxi-v3 --agent tabular --checkpoint-every 5 --out {out}", "--checkpoint-every does not apply"),
    ("train --env Taxi-v3 --agent tabular --tau 2 --out {out}", "--agent dsqn only"),
    ("train --agent rstdp --dueling --out {out}", "--dueling does not apply to --agent rstdp"),
    ("train --agent rstdp --noisy --c51 --out {out}", "--noisy, --c51 do not apply"),
    ("train --agent rstdp --num-envs 2 --out {out}", "--num-envs does not apply"),
    ("train --agent rstdp --device cpu --out {out}", "--device does not apply"),
    ("train --agent rstdp --arch mlp --out {out}", "--arch does not apply"),
    ("train --agent rstdp --rainbow --out {out}", "--rainbow does not apply"),
    ("train --agent rstdp --surrogate atan --out {out}", "--agent dsqn only"),
    ("train --env Taxi-v3 --agent tabular --batch-size 8 --out {out}", "--batch-size does not apply"),
    ("train --agent rstdp --precision bfloat16 --out {out}", "--precision does not apply"),
    ("train --agent rstdp --train-freq 2 --gradient-steps 2 --out {out}", "--train-freq, --gradient-steps do not"),
    ("train --agent dsqn --precision bfloat16 --out {out}", "does not apply to dsqn"),
    ("train --precision float16 --out {out}", "--precision must be float32 or bfloat16"),
    ("train --batch-size 0 --out {out}", "--batch-size must be >= 1"),
    ("train --train-freq 0 --out {out}", "--train-freq and --gradient-steps must be >= 1"),
    # train: run directories of another kind, broken ones
    ("train --steps 100 --out {tab}", "expected 'dqn'"),
    ("train --steps 100 --out {ga}", "expected 'dqn'"),
    ("train --steps 100 --out {snn}", "expected 'dqn'"),
    ("train --steps 100 --out {corrupt}", "truncated or corrupted"),
    ("train --steps 100 --out {nan_ckpt}", "NaN"),
    ("train --steps 100 --out {badcfg}", "config.yaml is corrupted"),
    ("train --steps 100 --out {strcfg}", "config.yaml is corrupted"),
    ("train --env Taxi-v3 --steps 10 --out {badcfg}", "config.yaml is corrupted"),
    ("train --agent rstdp --steps 1 --out {badcfg}", "config.yaml is corrupted"),
    ("train --env Taxi-v3 --steps 10 --out {dqn}", "expected 'tabular'"),
    ("train --env Taxi-v3 --steps 10 --out {cfgonly}", "holds a 'dqn' run"),
    ("train --agent rstdp --steps 1 --out {dqn}", "holds a 'dqn' run"),
    ("train --steps 300 --out {dqn} --dueling", "dueling"),
    ("train --steps 300 --out {dqn} --no-resume", "--no-resume"),
    ("train --env Taxi-v3 --steps 20 --out {tab} --no-resume", "--no-resume"),
    # run: every argument is checked before the training (was: 50,000 DQN steps, then a crash)
    ("run --methods , --out {out}", "no conversion method"),
    ("run --methods tan,tan --out {out}", "twice"),
    ("run --methods bogus --out {out}", "unknown conversion method"),
    ("run --episodes 0 --out {out}", "--episodes"),
    ("run --percentile 0 --out {out}", "percentile"),
    ("run --timesteps 0 --out {out}", "timesteps"),
    ("run --levels -1 --out {out}", "--levels"),
    ("run --finetune-frames 1 --out {out}", "--finetune-frames"),
    ("run --frames 0 --out {out}", "--frames"),
    ("run --steps 0 --out {out}", "--steps"),
    ("run --seed -1 --out {out}", "--seed"),
    ("run --device tpu --out {out}", "device"),
    ("run --env Bogus-v0 --out {out}", "unknown environment"),
    ("run --env Taxi-v3 --out {out}", "Discrete(500) observations"),
    ("run --methods tan --levels 8 --out {out}", "--levels does not apply to --methods tan"),
    ("run --methods naive --percentile 99 --out {out}", "--percentile does not apply to --methods naive"),
    ("run --levels 0 --finetune-steps 9 --out {out}", "with --levels 0"),
    ("run --out {pipe}", "config.yaml is corrupted"),
    # evolve
    ("evolve --method bogus --out {out}", "unknown method"),
    ("evolve --env CartPole-v1 --out {out}", "MountainCar-v0 only"),
    ("evolve --method es --env MountainCar-v0 --out {out}", "CartPole-v1 only"),
    ("evolve --population 0 --out {out}", "--population"),
    ("evolve --generations 0 --out {out}", "--generations"),
    ("evolve --workers 0 --out {out}", "--workers"),
    ("evolve --executor bogus --out {out}", "executor"),
    ("evolve --neuron hh --out {out}", "neuron model"),
    ("evolve --hidden 0 --out {out}", "--hidden"),
    ("evolve --start random --out {out}", "start mode"),
    ("evolve --episodes 0 --out {out}", "--episodes"),
    ("evolve --seed -1 --out {out}", "--seed"),
    ("evolve --elite -1 --out {out}", "--elite"),
    ("evolve --elite 40 --out {out}", "--elite"),
    ("evolve --method es --env CartPole-v1 --population 3 --out {out}", "even"),
    ("evolve --method es --env CartPole-v1 --hidden 0 --out {out}", "--hidden"),
    ("evolve --method es --env CartPole-v1 --elite 1 --out {out}", "--elite does not apply to --method es"),
    ("evolve --method es --env CartPole-v1 --neuron lif --out {out}", "--neuron does not apply to --method es"),
    ("evolve --method es --env CartPole-v1 --start individual --out {out}", "--start does not apply"),
    ("evolve --population 4 --generations 1 --out {badcfg}", "config.yaml is corrupted"),
    ("evolve --population 4 --generations 1 --out {dqn}", "holds a 'dqn' run"),
    ("evolve --population 4 --generations 1 --out {cfgonly}", "holds a 'dqn' run"),
    ("evolve --method es --env CartPole-v1 --population 2 --generations 1 --out {ga}", "not an ES run"),
    ("evolve --method es --env CartPole-v1 --population 2 --generations 1 --out {badcfg}", "config.yaml is corrupted"),
    ("evolve --population 6 --generations 1 --out {ga}", "another evolve run"),
    # export (NIR) and evaluating a .nir file
    ("export {snn} --out {out}", "ends in .nir"),
    ("export {snn} --format onnx --out {out}/a.nir", "unknown export format"),
    ("export {snn} --out {out}/a.nir --check-frames -1", "--check-frames"),
    ("export {dqn} --out {out}/a.nir", "convert it first"),
    ("export {tab} --out {out}/a.nir", "a 'tabular' agent has no NIR export"),
    ("export {corrupt} --out {out}/a.nir", "truncated or corrupted"),
    ("export {nan_ckpt} --out {out}/a.nir", "NaN"),
    ("export {out} --out {out}/a.nir", "no run directory"),
    ("evaluate {dqn} --env CartPole-v1", "--env applies to .nir files only"),
    ("evaluate {snn} --semantics nir", "--semantics applies to .nir files only"),
    ("evaluate {out}/a.nir", "no NIR file"),
    # plot
    ("plot {out}", "no run"),
    ("plot {badcfg}", "config.yaml is corrupted"),
    ("plot {strcfg}", "config.yaml is corrupted"),
    ("plot {snn}", "no training history"),
    # neuron, stdp, surrogates, encode
    ("neuron --model bogus", "unknown model"),
    ("neuron --duration 0", "duration"),
    ("neuron --dt 0", "dt"),
    ("neuron --model if --tau 5", "--tau"),
    ("neuron --model lif --tau 0", "tau"),
    ("neuron --input-rate 5", "--input-rate"),
    ("stdp --rule bogus", "--rule"),
    ("stdp --span 0", "span"),
    ("stdp --dt 0", "dt"),
    ("stdp --rule trace --duration -1", "duration"),
    ("stdp --rule pair --w0 3", "--w0 does not apply"),
    ("stdp --rule trace --a-plus 0.1", "--a-plus does not apply"),
    ("surrogates --json --points 1", "--points"),
    ("surrogates --json --x-max 0", "--x-max"),
    ("surrogates --points 11", "--points applies with --json only"),
    ("surrogates --x-max 2", "--x-max applies with --plot or --json only"),
    ("surrogates --plot {out}/missing/s.png", "No such file or directory"),
    ("encode --digit 12", "--digit"),
    ("encode --encoder bogus", "unknown encoder"),
    ("encode --timesteps 0", "timesteps"),
    ("encode --encoder bin --bins 0", "--bins"),
    ("encode --gain -1", "gain"),
    ("encode --encoder analog --gain 2", "--gain does not apply to --encoder analog"),
    ("encode --encoder gaussian --seed 3", "--seed does not apply"),
    ("encode --bins 3", "--bins does not apply to --encoder poisson"),
    ("encode --image {notimage} --digit 2", "--digit"),
    ("encode --image {out}", "not found"),
    ("encode --image {notimage}", "cannot read image"),
    # an output path that is a file
    ("train --env Taxi-v3 --steps 5 --out {afile}", "is a file, not a run directory"),
    ("train --steps 100 --out {afile}", "is a file, not a run directory"),
    ("train --agent rstdp --steps 1 --out {afile}", "is a file, not a run directory"),
    ("evolve --population 4 --generations 1 --out {afile}", "is a file, not a run directory"),
    ("evolve --method es --env CartPole-v1 --population 2 --generations 1 --out {afile}", "is a file"),
    ("convert {dqn} --frames 50 --out {afile}", "is a file, not a run directory"),
    ("run --steps 100 --out {afile}", "is a file"),
    ("plot {afile}", "is a file, not a run directory"),
    ("neuron --plot {afile}/v.png", "File exists"),
    # the click layer
    ("bogus-command", "No such command"),
    ("train --bogus-option", "No such option"),
    ("train --steps abc", "--steps"),
]


@pytest.mark.parametrize("line, words", ROWS, ids=[r[0] for r in ROWS])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(runs, tmp_path, capsys, line, words):
    out = tmp_path / "out"
    argv = [w.format(out=out, **{k: str(v) for k, v in runs.items()}) for w in line.split()]
    before = _snapshot(runs["root"])
    rc = main(argv)
    stdout, stderr = capsys.readouterr()
    lines = stderr.strip().splitlines()
    assert rc == 2, (rc, stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr[-2000:]
    assert words in lines[0], lines[0]
    assert "Traceback" not in stderr + stdout
    assert not out.exists()  # nothing written (the output went nowhere, not even a config.yaml)
    assert _snapshot(runs["root"]) == before  # no run directory touched


@pytest.mark.parametrize("line", ["evaluate {corrupt}", "train --env Taxi-v3 --agent dsqn --out {out}"])
def test_console_script_errors_are_one_line(runs, tmp_path, line):
    """The installed command (a fresh process, not main() in this one) gives the same single line."""
    out = tmp_path / "out"
    argv = [w.format(out=out, **{k: str(v) for k, v in runs.items()}) for w in line.split()]
    p = subprocess.run([sys.executable, "-m", "spikeverse.cli", *argv], capture_output=True, text=True,
                       env={**os.environ, "PYTHONWARNINGS": "ignore"})
    lines = [x for x in p.stderr.splitlines() if x.strip()]
    assert p.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), p.stderr[-2000:]
    assert "Traceback" not in p.stderr and not out.exists()


def test_corrupt_config_is_left_as_it_was(runs):
    assert (runs["badcfg"] / "config.yaml").read_text() == "agent: [dqn\n  :: {"
    assert (runs["strcfg"] / "config.yaml").read_text() == "garbage\n"


# --- options a method or agent takes are applied -------------------------------------------------


def test_tabular_lr_is_the_step_size(tmp_path, capsys):
    d = tmp_path / "tab"
    assert main(["train", "--env", "Taxi-v3", "--steps", "5", "--lr", "0.25", "--out", str(d), *Q]) == 0
    assert yaml.safe_load((d / "config.yaml").read_text())["alpha"] == 0.25


def test_hidden_applies_to_es_and_rstdp(tmp_path, capsys):
    es, rs = tmp_path / "es", tmp_path / "rstdp"
    assert main(["evolve", "--method", "es", "--env", "CartPole-v1", "--population", "2", "--generations", "1",
                 "--episodes", "1", "--hidden", "4", "--out", str(es), *Q]) == 0
    assert yaml.safe_load((es / "config.yaml").read_text())["network"]["hidden"] == 4
    assert main(["train", "--agent", "rstdp", "--steps", "1", "--eval-every", "0", "--hidden", "6",
                 "--out", str(rs), *Q]) == 0
    assert yaml.safe_load((rs / "config.yaml").read_text())["network"]["hidden"] == 6


def test_library_conversion_refuses_options_the_method_does_not_take():
    from spikeverse.convert import activation_stats, check_options, convert_ann, convert_naive, from_module

    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    flat = from_module(net, input_shape=(4,))
    stats = activation_stats(flat, torch.randn(50, 4), 99)
    with pytest.raises(SpikeverseError, match="'percentile' does not apply to conversion method 'naive'"):
        convert_ann(flat, method="naive", stats=stats, percentile=99.0)
    with pytest.raises(SpikeverseError, match="'levels' does not apply to conversion method 'tan'"):
        convert_ann(flat, method="tan", stats=stats, levels=8)
    with pytest.raises(SpikeverseError, match="'scales' does not apply"):
        convert_ann(flat, method="fast", stats=stats, scales=(1.0,))
    with pytest.raises(SpikeverseError, match="'percentile' does not apply"):
        convert_naive(flat, stats=stats, percentile=99.0)  # the method's own function, too
    with pytest.raises(SpikeverseError, match="--finetune-frames must be >= 2"):
        check_options("fast", finetune_frames=1)  # values are checked before any work
    snn, info = convert_ann(flat, method="naive", stats=stats, timesteps=4, scales=(2.0,), tau=5.0)
    assert info["scales"][0] == 2.0 and info["tau"] == 5.0


def test_convert_help_still_shows_the_defaults(capsys):
    assert main(["convert", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for default in ("99.9", "32", "50000", "mixed-levels", "channel-wise", "0.5", "no-early-decision", "10,100",
                    "10.0", "15000"):
        assert default in text, default
