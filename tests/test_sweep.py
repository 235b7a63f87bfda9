"""`spikeverse sweep` (seed 001 Fig. 1, Tables 1 and 2): the T x p x readout grid, score and
conversion rate, Pearson r, DQN vs SNN, parallel = serial, CLI errors and outputs."""

import json
import math

import numpy as np
import pytest
from scipy import stats

from spikeverse.analysis.statistics import compare
from spikeverse.cli.app import main
from spikeverse.errors import SpikeverseError
from spikeverse.study.sweep import parse_list, pearson, run_sweep

GRID = dict(timesteps=(16, 4), percentiles=(100, 99), readouts=("rate", "robust"), episodes=3, frames=300,
            progress=False)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A barely trained CartPole DQN run directory (a few hundred updates, about 2 s)."""
    from spikeverse.rl.config import DQNConfig
    from spikeverse.rl.train import train_dqn

    out = tmp_path_factory.mktemp("sweep") / "dqn"
    cfg = DQNConfig.for_env("CartPole-v1", total_steps=600, learning_starts=200, hidden=(32, 32), batch_size=32,
                            eval_interval=0, device="cpu")
    train_dqn(cfg, out, progress=False)
    return out


@pytest.fixture(scope="module")
def swept(run):
    return run_sweep(run, workers=1, **GRID)


def test_the_grid_has_one_row_per_setting(swept):
    rows = swept["rows"]
    keys = [(w["readout"], w["percentile"], w["timesteps"]) for w in rows]
    assert keys == [(r, p, T) for r in ("rate", "robust") for p in (99.0, 100.0) for T in (4, 16)]
    assert swept["timesteps"] == [4, 16] and swept["percentiles"] == [99.0, 100.0]
    for w in rows:
        assert len(w["scores"]) == 3 and w["mean"] == pytest.approx(np.mean(w["scores"]))
        assert w["pct_of_dqn"] == pytest.approx(100 * w["mean"] / swept["dqn"]["mean"])
    assert swept["dqn"]["n"] == 3 and swept["env"] == "CartPole-v1" and swept["method"] == "tan"
    assert set(swept["lambdas"]) == {"99", "100"} and swept["collection"]["frames"] == 300
    json.dumps(swept, allow_nan=False)  # valid JSON: no NaN


def test_each_row_is_the_snn_of_its_setting_played_with_the_dqn_in_the_shadow(run, swept):
    """Every row's scores and conversion rate (seed 001 eq. 18) are those of the SNN built here from
    the DQN and the row's percentile's lambdas (normalized, IF neurons, the row's T and readout),
    played on the sweep's protocol (3 episodes, seed 0, epsilon 0.05) with the DQN in the shadow."""
    from spikeverse.convert import SpikingQNetwork, from_module, normalize
    from spikeverse.rl.evaluation import evaluate
    from spikeverse.rl.checkpoint import load_dqn

    ann = from_module(load_dqn(run)[0])
    rates = []
    for w in swept["rows"]:
        lambdas = swept["lambdas"][f"{w['percentile']:g}"]
        snn = SpikingQNetwork(normalize(ann, lambdas), w["timesteps"], w["readout"], lambdas=lambdas)
        ref = evaluate(snn, "CartPole-v1", episodes=3, seed=0, epsilon=0.05, shadow=ann)
        assert ref.scores == w["scores"] and ref.conversion_rate == w["conversion_rate"], w
        rates.append(w["conversion_rate"])
    assert len(set(rates)) > 1  # the settings differ, so a row swapped with another would be caught


def test_statistics_of_the_returned_rows(swept):
    rows = swept["rows"]
    for r in ("rate", "robust", "all"):
        mine = [w for w in rows if r in ("all", w["readout"])]
        x, y = [w["conversion_rate"] for w in mine], [w["mean"] for w in mine]
        c = swept["pearson"][r]
        assert c["n"] == len(mine)
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            assert c["r"] is None and "constant" in c["note"]
        else:
            ref = stats.pearsonr(x, y)
            assert c["r"] == pytest.approx(ref.statistic) and c["p"] == pytest.approx(ref.pvalue)
    dqn = swept["dqn"]["scores"]
    assert swept["table1"][0]["agent"] == "DQN" and len(swept["table1"]) == len(rows) + 1
    for w, t in zip(rows, swept["table1"][1:]):
        p = compare(dqn, w["scores"])["p_value"]
        assert (t["p_value"] is None and math.isnan(p)) or t["p_value"] == pytest.approx(p)
        assert t["p_value"] == w["p_value"] and t["mean"] == w["mean"]
    for r in ("rate", "robust"):
        best = [t for t in swept["table1"] if t["best"] and t["readout"] == r]
        assert len(best) == 1 and best[0]["mean"] == max(w["mean"] for w in rows if w["readout"] == r)


def test_workers_do_not_change_the_result(run, swept):
    par = run_sweep(run, workers=2, **GRID)
    assert par["workers"] == 2
    for key in ("dqn", "rows", "pearson", "table1", "lambdas"):
        assert par[key] == swept[key], key


def test_pearson_degenerate_cases():
    assert pearson([10.0, 10.0, 10.0], [0.5, 0.7, 0.9]) == dict(r=None, p=None, n=3,
                                                                note="undefined: constant score")
    assert "constant conversion rate" in pearson([1.0, 2.0], [1.0, 1.0])["note"]
    assert "fewer than 2" in pearson([1.0], [0.5])["note"]
    c = pearson([1.0, 2.0, 4.0], [0.2, 0.5, 0.9])
    assert c["r"] == pytest.approx(stats.pearsonr([0.2, 0.5, 0.9], [1.0, 2.0, 4.0]).statistic)


def test_parse_list():
    assert parse_list("8, 16,32", int, "--timesteps") == [8, 16, 32]
    assert parse_list("99.9,100", float) == [99.9, 100.0]
    with pytest.raises(SpikeverseError, match="--timesteps is empty"):
        parse_list(" ", int, "--timesteps")
    with pytest.raises(SpikeverseError, match=r"--timesteps: '8\.5' is not an integer"):
        parse_list("8.5", int, "--timesteps")


@pytest.mark.parametrize("args,needle", [
    (["--timesteps", ""], "--timesteps is empty"),
    (["--timesteps", "8,0"], "timesteps must be an integer >= 1"),
    (["--percentiles", "0"], "percentile must be in (0, 100]"),
    (["--percentiles", "99,100.5"], "percentile must be in (0, 100]"),
    (["--readouts", "rate,softmax"], "unknown readout 'softmax'"),
    (["--method", "bogus"], "unknown conversion method 'bogus'"),
    (["--episodes", "0"], "episodes must be"),
    (["--workers", "0"], "workers must be"),
])
def test_bad_input_is_one_line_and_exit_code_2(run, capsys, args, needle):
    rc = main(["sweep", str(run), *args])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and needle in err and err.count("\n") == 1


def test_missing_run_dir(tmp_path, capsys):
    rc = main(["sweep", str(tmp_path / "nope"), "--timesteps", "8"])
    err = capsys.readouterr().err
    assert rc == 2 and err == f"error: no run directory at {tmp_path / 'nope'}\n"


def test_cli_json_and_plots(run, tmp_path, capsys):
    plots = tmp_path / "plots"
    args = ["sweep", str(run), "--timesteps", "4,8", "--percentiles", "100", "--readouts", "robust,rate",
            "--episodes", "2", "--frames", "200", "--workers", "1", "--no-progress"]
    rc = main([*args, "--json", "--plot", str(plots)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    res = json.loads(out)
    assert [(w["readout"], w["timesteps"]) for w in res["rows"]] == [("robust", 4), ("robust", 8), ("rate", 4),
                                                                      ("rate", 8)]
    for f in ("score_cr_vs_T.png", "score_vs_cr.png"):
        assert (plots / f).stat().st_size > 1000
    assert json.loads((plots / "sweep.json").read_text())["rows"] == res["rows"]
    md = (plots / "sweep.md").read_text()
    assert "| p | T | robust score | robust CR | rate score | rate CR |" in md
    assert "| 100 | 8 |" in md and "Pearson r" in md and "| DQN | | | |" in md and "![score_vs_cr](score_vs_cr.png)" in md

    rc = main(args)  # readable table on stdout
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "| p | T | robust score | robust CR | rate score | rate CR |" in out and "| SNN | rate | 100 | 4 |" in out
