"""spikeverse.progress.Progress, and the long phases that report through it (issue 11: long
work is silent): a line about every 10% when stderr is not a terminal, nothing with --no-progress."""

from __future__ import annotations

import io
import re

import pytest

from spikeverse.cli.app import main
from spikeverse.progress import Progress, announce, reporter
from spikeverse.rl.config import DQNConfig
from spikeverse.rl.train import train_dqn

pytestmark = pytest.mark.usefixtures("one_thread")


def lines(text: str, desc: str) -> list[str]:
    return [l for l in text.splitlines() if l.startswith(desc + ":")]


def test_plain_lines_about_every_tenth_with_the_final_one_and_the_fields():
    f = io.StringIO()
    with Progress(1000, "fine-tune", unit="step", file=f) as p:
        for i in range(1000):
            p.update(1, loss=1.0 / (i + 1), best=i)
    out = f.getvalue().splitlines()
    assert len(out) == 10
    assert out[0] == "fine-tune: 100/1000 step (10%) loss=0.01 best=99"
    assert out[-1] == "fine-tune: 1000/1000 step (100%) loss=0.001 best=999"


def test_uneven_updates_and_a_resumed_count_still_give_about_ten_lines():
    f = io.StringIO()
    with Progress(15_000, "collect CartPole-v1", unit="frame", initial=3_000, file=f) as p:
        while p.n < 15_000:
            p.update(min(4, 15_000 - p.n), episodes=1)
    out = f.getvalue().splitlines()
    assert 8 <= len(out) <= 10 and out[-1].startswith("collect CartPole-v1: 15000/15000 frame (100%)")


def test_a_phase_that_stops_short_reports_where_it_stopped():
    f = io.StringIO()
    with Progress(20, "evolve ga MountainCar-v0", unit="generation", file=f) as p:
        for _ in range(7):
            p.update(1)
    assert f.getvalue().splitlines()[-1] == "evolve ga MountainCar-v0: 7/20 generation (35%)"
    f = io.StringIO()
    Progress(20, "nothing done", file=f).close()
    assert f.getvalue() == ""


def test_disabled_is_silent():
    f = io.StringIO()
    with Progress(1000, "x", file=f, enabled=False) as p:
        for _ in range(1000):
            p.update(1, loss=0.5)
    announce("a phase starts", False, file=f)
    assert f.getvalue() == "" and p.n == 1000


def test_enabled_draws_a_bar_on_the_given_file():
    f = io.StringIO()
    with Progress(50, "sweep", unit="eval", file=f, enabled=True) as p:
        assert p.bar is not None
        for _ in range(50):
            p.update(1, last="dqn")
    text = f.getvalue()
    assert "sweep:" in text and "|" in text and "/50 [" in text and "\r" in text  # tqdm's bar
    assert "50/50 eval (100%)" not in text  # not the plain lines


def test_reporter_uses_a_callers_bar_and_leaves_it_open():
    ticks = []

    class Bar:
        def update(self, n):
            ticks.append(n)

        def close(self):
            raise AssertionError("the caller closes its own bar")

    with reporter(Bar(), 3, "evaluate") as r:
        for _ in range(3):
            r.update(1, mean=1.0)
    assert ticks == [1, 1, 1]
    f = io.StringIO()
    outer = Progress(4, "sweep T", unit="episode", file=f)
    for _ in range(2):
        with reporter(outer, 2, "evaluate") as r:
            r.update(1)
            r.update(1)
    outer.close()
    assert f.getvalue().splitlines()[-1] == "sweep T: 4/4 episode (100%)"
    assert isinstance(reporter(None, 3, "x"), Progress) and reporter(False, 3, "x").silent


# ----------------------------------------------------------------------------- the phases


@pytest.fixture(scope="module")
def dqn_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("progress") / "dqn"
    train_dqn(DQNConfig.for_env("CartPole-v1", total_steps=300, eval_interval=0, device="cpu"), run, progress=False)
    return run


def cli(capsys, *args):
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return out, err


def test_the_dqn_trainer_reports_on_stderr(tmp_path, capsys):
    cfg = DQNConfig.for_env("CartPole-v1", total_steps=400, eval_interval=0, device="cpu")
    train_dqn(cfg, tmp_path / "a")  # progress=None, stderr not a terminal: plain lines
    got = lines(capsys.readouterr().err, "train dqn CartPole-v1")
    assert 5 <= len(got) <= 11 and got[-1].startswith("train dqn CartPole-v1: 400/400 step (100%)")
    assert all(re.search(r"episodes=\d+ return=\S+ eps=\S+ loss=\S+ sps=\d+", l) for l in got)
    _, err = cli(capsys, "train", "--env", "CartPole-v1", "--steps", 300, "--eval-every", 0, "--device", "cpu",
                 "--out", tmp_path / "b", "--no-progress")
    assert err == ""


def test_convert_reports_its_frame_collection(dqn_run, tmp_path, capsys):
    args = ["convert", dqn_run, "--method", "tan", "--frames", 200, "--device", "cpu"]
    _, err = cli(capsys, *args, "--out", tmp_path / "a")
    got = lines(err, "collect CartPole-v1")
    assert 5 <= len(got) <= 11 and got[-1].startswith("collect CartPole-v1: 200/200 frame (100%) episodes=")
    _, err = cli(capsys, *args, "--out", tmp_path / "b", "--no-progress")
    assert err == ""


def test_evaluate_reports_its_episodes(dqn_run, capsys):
    _, err = cli(capsys, "evaluate", dqn_run, "--episodes", 4, "--num-envs", 2, "--device", "cpu")
    got = lines(err, "evaluate CartPole-v1")
    assert len(got) == 4 and got[-1].startswith("evaluate CartPole-v1: 4/4 episode (100%) mean=")
    _, err = cli(capsys, "evaluate", dqn_run, "--episodes", 4, "--device", "cpu", "--no-progress")
    assert err == ""
