"""``spikeverse mnist`` (issue 18): seed 000's spiking digit classifier by both routes on the offline
default, its readout, its run directory (resume after a stop or a SIGKILL, refusals), its figures
and its one-line errors."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from spikeverse.cli.app import main
from spikeverse.errors import SpikeverseError
from spikeverse.io.checkpoint import load_checkpoint
from spikeverse.io.rundir import read_metrics
from spikeverse.mnist import Evaluation, MNISTConfig, readout, evaluate, load_digits, margins, predict, train_mnist
from spikeverse.mnist.readout import eval_batch_size, window_of
from spikeverse.snn.neurons import IFNeuron

pytestmark = pytest.mark.usefixtures("one_thread")

Q = ["--no-progress"]
TINY = ["--hidden", "32", "--timesteps", "4"]  # a small network for the lifecycle tests


def run_cli(*args) -> int:
    return main([str(a) for a in args] + Q)


# ------------------------------------------------------------------ the readout


def test_predict_breaks_count_ties_by_the_membrane():
    counts = torch.tensor([[3.0, 5.0, 5.0, 1.0], [0.0, 0.0, 0.0, 0.0], [2.0, 7.0, 1.0, 0.0]])
    v = torch.tensor([[0.9, 0.1, 0.4, 0.95], [0.2, 0.3, 0.1, 0.0], [0.0, 0.0, 0.99, 0.0]])
    assert predict(counts, v).tolist() == [2, 1, 1]  # tie 1/2 -> the higher membrane; a count beats any membrane
    assert predict(counts).tolist() == [1, 0, 1]
    assert margins(counts).tolist() == [0.0, 0.0, 5.0]


def test_examples_are_the_most_confident_correct_and_the_most_ambiguous():
    counts = torch.tensor([[9.0, 0, 0], [0, 0, 0], [4, 4, 0], [1, 5, 0], [0, 6, 6], [0, 0, 8]])
    v = torch.zeros_like(counts)
    labels = torch.tensor([0, 1, 1, 1, 2, 0])
    ev = Evaluation(counts, v, labels, timesteps=10)
    picks = ev.examples()
    # margin 0 for rows 1, 2 and 4: the silent row 1 is not the ambiguous one, row 4 (6 runner-up spikes) is
    assert picks["ambiguous"] == 4
    assert picks["correct"] == 0  # margin 9, correctly classified (row 5 has margin 8 and is wrong)
    assert ev.predictions.tolist() == [0, 0, 0, 1, 1, 2]  # ties (equal membranes): the lowest class
    assert ev.accuracy == pytest.approx(2 / 6)
    e = ev.example(4)
    assert e["label"] == 2 and e["margin"] == 0.0 and e["counts"] == [0.0, 6.0, 6.0]


def test_the_raster_is_the_window_that_was_classified(monkeypatch):
    """An identity network (each output neuron repeats its input pixel's spikes): the output counts
    of every image are its Poisson window's spikes, and window_of draws that same window again;
    another key draws other spikes, the same key the same."""
    monkeypatch.setattr(readout, "WINDOW_VALUES", 64 * 200 * 10)  # T = 200: 10 images per batch
    images = load_digits().test_x[:30]  # 64 pixels
    lin = nn.Linear(64, 64)
    with torch.no_grad():
        lin.weight.copy_(torch.eye(64))
        lin.bias.zero_()
    layers = [lin, IFNeuron(0.5, reset="hard")]
    labels = torch.zeros(30, dtype=torch.long)
    T = 200
    assert eval_batch_size(T, 64) == 10  # 3 batches, each with its own seed
    ev = evaluate(layers, images, labels, T, (7, "test", 1))
    for i in (0, 15, 29):
        w = window_of(images, i, T, (7, "test", 1))
        assert w.shape == (T, 64)
        assert torch.equal(w.sum(0).double(), ev.counts[i])
        # the rate follows the intensity (seed 000: the brighter the pixel, the more spikes)
        assert torch.allclose(w.mean(0), images[i].flatten(), atol=0.15)
    again = evaluate(layers, images, labels, T, (7, "test", 1))
    other = evaluate(layers, images, labels, T, (7, "test", 2))
    assert torch.equal(again.counts, ev.counts) and not torch.equal(other.counts, ev.counts)


# ------------------------------------------------------------------ training on the offline default


@pytest.fixture(scope="module")
def surrogate_run(tmp_path_factory, one_thread):
    """The surrogate route with every default on the offline digits (10 epochs, about 10 s)."""
    out = tmp_path_factory.mktemp("mnist") / "surrogate"
    t0 = time.perf_counter()
    assert run_cli("mnist", "--out", out) == 0
    return out, time.perf_counter() - t0


def test_surrogate_route_reaches_95_percent_on_the_offline_default(surrogate_run):
    out, seconds = surrogate_run
    ev = json.loads((out / "evaluation.json").read_text())
    rows = read_metrics(out)
    assert [int(r["epoch"]) for r in rows] == list(range(1, 11))
    assert ev["test_accuracy"] >= 0.95, ev["test_accuracy"]
    assert ev["test_accuracy"] == pytest.approx(float(rows[-1]["test_accuracy"]), abs=1e-6)
    assert float(rows[0]["test_accuracy"]) < ev["test_accuracy"]  # it learned
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    walls = [float(r["wall_seconds"]) for r in rows]
    assert walls == sorted(walls) and all(float(r["epoch_seconds"]) > 0 for r in rows)
    cfg = (out / "config.yaml").read_text()
    assert "method: surrogate" in cfg and "tau: 10.0" in cfg and "conversion" not in cfg
    assert seconds < 120


def test_the_figures_are_written(surrogate_run):
    out, _ = surrogate_run
    figs = {p.name: p for p in (out / "figures").iterdir()}
    assert set(figs) == {"raster.png", "output_counts.png", "accuracy.png"}
    for p in figs.values():
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000
    ev = json.loads((out / "evaluation.json").read_text())
    amb, ok = ev["examples"]["ambiguous"], ev["examples"]["correct"]
    assert ok["prediction"] == ok["label"] and ok["margin"] > amb["margin"]
    assert sum(amb["counts"]) > 0  # two classes active, not a silent output
    raster = torch.tensor(ev["raster"]["spikes"])
    assert raster.shape == (16, 64) and ev["raster"]["index"] == amb["index"]
    assert set(raster.unique().tolist()) <= {0, 1}
    for p in figs.values():
        p.unlink()
    assert main(["plot", str(out)]) == 0  # spikeverse plot draws them again
    assert {p.name for p in (out / "figures").iterdir()} == set(figs)


def test_converted_route_accuracy_rises_with_t_to_the_anns(tmp_path):
    out = tmp_path / "convert"
    assert run_cli("mnist", "--method", "convert", "--out", out, "--sweep-timesteps", "1,2,8,32,128") == 0
    ev = json.loads((out / "evaluation.json").read_text())
    acc = {c["timesteps"]: c["accuracy"] for c in ev["accuracy_vs_t"]}
    assert sorted(acc) == [1, 2, 8, 16, 32, 128]  # T = 16 (the run's) added
    ann = ev["ann_test_accuracy"]
    assert ann >= 0.93
    assert acc[1] < acc[2] < acc[8] - 0.02  # rising with T
    assert acc[1] < 0.8
    assert abs(acc[128] - ann) <= 0.02 and abs(acc[32] - ann) <= 0.03  # close to the ANN at large T
    assert acc[16] == pytest.approx(ev["test_accuracy"])
    rows = read_metrics(out)
    assert len(rows) == 10 and all(r["ann_test_accuracy"] for r in rows)
    assert float(rows[-1]["ann_test_accuracy"]) == pytest.approx(ann, abs=1e-6)
    assert ev["conversion"] == "tan" and len(ev["lambdas"]) == 2
    assert "accuracy_vs_t.png" in {p.name for p in (out / "figures").iterdir()}


def test_the_fast_conversion_runs_its_fine_tune(tmp_path):
    out = tmp_path / "fast"
    assert run_cli("mnist", "--method", "convert", "--conversion", "fast", "--finetune-steps", "30", "--epochs", "1",
                   *TINY, "--sweep-timesteps", "4", "--out", out) == 0
    ev = json.loads((out / "evaluation.json").read_text())
    assert ev["conversion"] == "fast" and isinstance(ev["lambdas"][0], list)  # QCFS: a threshold per unit
    assert "finetune_steps: 30" in (out / "config.yaml").read_text()


def test_mnist_files_from_a_folder_train_end_to_end(tmp_path):
    from test_mnist_data import mnist_folder

    root, _ = mnist_folder(tmp_path / "m", n_train=20, n_test=6)
    out = tmp_path / "run"
    assert run_cli("mnist", "--data", root, "--epochs", "1", "--hidden", "8", "--out", out) == 0
    ev = json.loads((out / "evaluation.json").read_text())
    assert ev["dataset"] == "mnist" and ev["timesteps"] == 25 and ev["test_images"] == 6
    assert torch.tensor(ev["raster"]["spikes"]).shape == (25, 784)
    cfg = (out / "config.yaml").read_text()
    assert "batch_size: 128" in cfg and str(root) in cfg


# ------------------------------------------------------------------ the run directory


def _same_run(a: Path, b: Path) -> None:
    ta, ma = load_checkpoint(a / "checkpoint.safetensors")
    tb, mb = load_checkpoint(b / "checkpoint.safetensors")
    assert sorted(ta) == sorted(tb) and all(torch.equal(ta[k], tb[k]) for k in ta)
    assert (ma["epoch"], ma["step"]) == (mb["epoch"], mb["step"])
    cols = ("epoch", "step", "train_loss", "test_accuracy")
    assert [[r[c] for c in cols] for r in read_metrics(a)] == [[r[c] for c in cols] for r in read_metrics(b)]
    ea, eb = (json.loads((d / "evaluation.json").read_text()) for d in (a, b))
    ea.pop("wall_seconds"), eb.pop("wall_seconds")
    assert ea == eb


@pytest.mark.parametrize("method", ["surrogate", "convert"])
def test_stop_after_one_epoch_and_rerun_to_two_is_two_straight(tmp_path, method):
    a, b = tmp_path / "a", tmp_path / "b"
    assert run_cli("mnist", "--method", method, *TINY, "--epochs", "1", "--out", a) == 0
    assert run_cli("mnist", "--method", method, *TINY, "--epochs", "2", "--out", a) == 0
    assert run_cli("mnist", "--method", method, *TINY, "--epochs", "2", "--out", b) == 0
    _same_run(a, b)
    assert "epochs: 2" in (a / "config.yaml").read_text()
    before = (a / "checkpoint.safetensors").read_bytes()
    assert run_cli("mnist", "--method", method, *TINY, "--epochs", "2", "--out", a) == 0  # finished: nothing to train
    assert (a / "checkpoint.safetensors").read_bytes() == before


def test_a_run_killed_mid_way_resumes_to_the_same_result(tmp_path):
    """SIGKILL right after the first checkpoint (in the middle of the run), rerun: the same weights,
    metrics and evaluation as a run that was never interrupted."""
    a, b = tmp_path / "killed", tmp_path / "straight"
    args = ["mnist", *TINY, "--epochs", "8", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "spikeverse.cli", *args, "--out", str(a)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = a / "checkpoint.safetensors"
    deadline = time.monotonic() + 120
    while not ckpt.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    still_running = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert still_running, "the run ended before it could be killed"
    done = load_checkpoint(ckpt)[1]["epoch"]
    assert 1 <= done < 8
    assert not (a / "evaluation.json").exists()
    assert main([*args, "--out", str(a)]) == 0
    assert main([*args, "--out", str(b)]) == 0
    _same_run(a, b)


def test_a_changed_config_is_refused_and_the_run_left_alone(tmp_path, capsys):
    a = tmp_path / "a"
    assert run_cli("mnist", *TINY, "--epochs", "2", "--out", a) == 0
    snapshot = {p.name: p.read_bytes() for p in a.iterdir() if p.is_file()}
    capsys.readouterr()
    for extra, words in [(["--lr", "0.01"], "lr=0.001, not 0.01"), (["--tau", "3"], "tau=10.0, not 3.0"),
                         (["--seed", "1"], "seed=0, not 1"), (["--method", "convert"], "method='surrogate'"),
                         (["--epochs", "1"], "trained 2 epochs already"), (["--no-resume"], "--no-resume")]:
        argv = ["mnist", *TINY, "--epochs", "2", "--out", str(a), *extra, *Q]
        assert main(argv) == 2, extra
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], (extra, err)
    assert {p.name: p.read_bytes() for p in a.iterdir() if p.is_file()} == snapshot


def test_more_epochs_and_another_device_may_continue_a_run(tmp_path):
    a = tmp_path / "a"
    assert run_cli("mnist", *TINY, "--epochs", "1", "--device", "auto", "--out", a) == 0
    assert run_cli("mnist", *TINY, "--epochs", "2", "--device", "cpu", "--out", a) == 0
    assert len(read_metrics(a)) == 2


def test_another_kind_of_run_is_refused(tmp_path, capsys):
    ga = tmp_path / "ga"
    assert main(["evolve", "--population", "4", "--generations", "1", "--out", str(ga), *Q]) == 0
    capsys.readouterr()
    assert main(["mnist", "--out", str(ga), *Q]) == 2
    assert "holds a 'ga' run" in capsys.readouterr().err


def test_the_library_refuses_before_writing(tmp_path):
    with pytest.raises(SpikeverseError, match="--finetune-steps does not apply to --conversion tan"):
        train_mnist(MNISTConfig(method="convert", finetune_steps=5), tmp_path / "x")
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------------ one-line errors


ERRORS = [
    ("--epochs 0", "--epochs must be an integer >= 1"),
    ("--timesteps 0", "--timesteps must be an integer >= 1"),
    ("--batch-size 0", "--batch-size"),
    ("--lr 0", "--lr must be > 0"),
    ("--lr nan", "--lr must be > 0"),
    ("--seed -1", "--seed"),
    ("--hidden 0", "--hidden"),
    ("--hidden a,b", "--hidden takes comma-separated integers"),
    ("--method bogus", "unknown --method 'bogus'"),
    ("--method convert --tau 2", "--tau does not apply to --method convert"),
    ("--method convert --surrogate atan --alpha 2", "--surrogate, --alpha do not apply to --method convert"),
    ("--conversion fast", "--conversion does not apply to --method surrogate"),
    ("--percentile 99", "--percentile does not apply to --method surrogate"),
    ("--sweep-timesteps 1,2", "--sweep-timesteps does not apply to --method surrogate"),
    ("--method convert --finetune-steps 10", "--finetune-steps does not apply to --conversion tan"),
    ("--method convert --conversion naive", "unknown --conversion 'naive'"),
    ("--method convert --percentile 0", "percentile"),
    ("--method convert --sweep-timesteps 0,4", "--sweep-timesteps needs one or more T >= 1"),
    ("--method convert --conversion fast --finetune-steps 0", "--finetune-steps must be an integer >= 1"),
    ("--tau 0", "--tau must be > 0"),
    ("--surrogate bogus", "unknown surrogate 'bogus'"),
    ("--alpha -1", "must be a positive number"),
    ("--device tpu", "unknown device 'tpu'"),
    ("--data {missing}", "no such folder"),
    ("--data {empty}", "has no train-images-idx3-ubyte"),
]


@pytest.mark.parametrize("args,words", ERRORS)
def test_bad_options_are_one_line_errors_and_write_nothing(tmp_path, capsys, args, words):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "run"
    argv = ["mnist", "--out", str(out), *args.format(missing=tmp_path / "missing", empty=tmp_path / "empty").split(), *Q]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and words in err[0], err
    assert not out.exists()


def test_out_is_required_and_must_be_a_directory(tmp_path, capsys):
    assert main(["mnist", *Q]) == 2
    assert "--out" in capsys.readouterr().err
    f = tmp_path / "afile"
    f.write_text("not a run directory")
    assert main(["mnist", "--out", str(f), *Q]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a file" in err[0] and f.read_text() == "not a run directory"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_trains_on_cuda(tmp_path):
    out = tmp_path / "cuda"
    assert run_cli("mnist", *TINY, "--epochs", "1", "--device", "cuda", "--out", out) == 0
    assert json.loads((out / "evaluation.json").read_text())["test_accuracy"] > 0.3
