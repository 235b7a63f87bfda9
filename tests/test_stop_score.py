"""Early stopping (``stop_score``): training ends at the first model-selection evaluation whose mean
reaches the score, keeps those weights as the best, and a resume of a stopped run stays stopped."""

import pytest

from spikeverse.errors import SpikeverseError
from spikeverse.io.rundir import EVALS, read_metrics
from spikeverse.rl.checkpoint import load_dqn
from spikeverse.rl.config import DQNConfig
from spikeverse.rl.train import STOP_CONFIRM_EPISODES, train_dqn

SMALL = dict(total_steps=3000, learning_starts=100, batch_size=16, buffer_size=1000, eval_interval=200,
             eval_episodes=3, target_update_interval=50, device="cpu", hidden=(16,), seed=4)


def test_training_stops_at_the_first_evaluation_that_reaches_the_score(tmp_path):
    # an untrained CartPole policy balances for about 10 frames: a score of 5 is reached at once
    res = train_dqn(DQNConfig.for_env("CartPole-v1", **SMALL, stop_score=5.0), tmp_path, progress=False)
    evals = read_metrics(tmp_path / EVALS)
    assert res.steps == 200 and len(evals) == 1 and float(evals[0]["mean"]) >= 5.0
    assert int(evals[0]["episodes"]) == STOP_CONFIRM_EPISODES  # the candidate was confirmed on 100 episodes
    _, meta = load_dqn(tmp_path)
    assert meta["step"] == 200 and meta["best_step"] == 200 and meta["best_score"] == float(evals[0]["mean"])
    again = train_dqn(DQNConfig.for_env("CartPole-v1", **SMALL, stop_score=5.0), tmp_path, progress=False, resume=True)
    assert again.steps == 200 and len(read_metrics(tmp_path / EVALS)) == 1  # stopped: nothing more done


def test_a_candidate_that_fails_its_confirmation_trains_on(tmp_path, monkeypatch):
    from spikeverse.rl import train as train_mod
    from spikeverse.rl.evaluation import EvalResult

    def fake(net, cfg, step, episodes=None):  # every first evaluation reaches the score, no confirmation does
        n = episodes or cfg.eval_episodes
        return EvalResult("CartPole-v1", n, [10.0 if episodes is None else 1.0] * n, [10] * n, 0.05, 0, False, None)

    monkeypatch.setattr(train_mod, "_quick_eval", fake)
    res = train_dqn(DQNConfig.for_env("CartPole-v1", **SMALL, stop_score=5.0), tmp_path, progress=False)
    evals = read_metrics(tmp_path / EVALS)
    assert res.steps == 3000 and {float(e["mean"]) for e in evals} == {1.0}


def test_a_score_never_reached_trains_every_step(tmp_path):
    res = train_dqn(DQNConfig.for_env("CartPole-v1", **SMALL, stop_score=1e9), tmp_path, progress=False)
    assert res.steps == 3000 and len(read_metrics(tmp_path / EVALS)) == 3000 // 200


def test_turning_evaluations_off_drops_the_default_stop():
    assert DQNConfig.for_env("CartPole-v1").stop_score == 500.0
    assert DQNConfig.for_env("CartPole-v1", eval_interval=0).stop_score is None


@pytest.mark.parametrize("bad", [dict(stop_score=500.0, eval_interval=0), dict(stop_score=float("nan"))])
def test_a_stop_score_without_evaluations_is_refused(bad):
    with pytest.raises(SpikeverseError, match="stop_score"):
        DQNConfig.for_env("CartPole-v1", **{**SMALL, **bad})


def test_the_cli_stops_early_and_refuses_the_option_for_tabular(tmp_path, capsys):
    from spikeverse.cli.app import main

    assert main(["train", "--env", "CartPole-v1", "--steps", "3000", "--eval-every", "500", "--eval-episodes", "2",
                 "--stop-score", "5", "--hidden", "16", "--device", "cpu", "--out", str(tmp_path / "r"), "--json",
                 "--no-progress"]) == 0
    assert '"steps": 1000' in capsys.readouterr().out  # the first evaluation, at learning_starts
    assert main(["train", "--env", "FrozenLake-v1", "--stop-score", "1", "--out", str(tmp_path / "t")]) == 2
    assert "--stop-score does not apply to --agent tabular" in capsys.readouterr().err
