"""``spikeverse plot RUN_DIR``: the figures of each kind of run, drawn from its CSV files."""

import json

import matplotlib.image as mpimg
import pytest

from spikeverse.cli.app import main


def run_cli(capsys, *args):
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def figures(capsys, run_dir):
    rc, out, err = run_cli(capsys, "plot", run_dir, "--json")
    assert rc == 0, err
    paths = json.loads(out)["figures"]
    for p in paths:  # real images, not empty files
        h, w = mpimg.imread(p).shape[:2]
        assert h > 100 and w > 100
    return [p.rsplit("/", 1)[-1] for p in paths]


def test_dqn_run_gets_a_learning_curve_with_its_evaluations(tmp_path, capsys):
    d = tmp_path / "dqn"
    assert run_cli(capsys, "train", "--env", "CartPole-v1", "--steps", 1200, "--eval-every", 400, "--no-progress",
                   "--device", "cpu", "--out", d)[0] == 0
    assert figures(capsys, d) == ["learning_curve.png"]


def test_tabular_and_rstdp_runs_get_learning_curves(tmp_path, capsys):
    assert run_cli(capsys, "train", "--env", "Taxi-v3", "--agent", "tabular", "--steps", 30, "--out", tmp_path / "t",
                   "--no-progress")[0] == 0
    assert figures(capsys, tmp_path / "t") == ["learning_curve.png"]
    assert run_cli(capsys, "train", "--env", "CartPole-v1", "--agent", "rstdp", "--steps", 3, "--eval-every", 2,
                   "--out", tmp_path / "r", "--no-progress")[0] == 0
    assert figures(capsys, tmp_path / "r") == ["learning_curve.png"]


def test_es_run_gets_its_fitness_figure_and_ga_its_three(tmp_path, capsys):
    assert run_cli(capsys, "evolve", "--env", "CartPole-v1", "--method", "es", "--population", 4, "--generations", 2,
                   "--out", tmp_path / "es", "--plot")[0] == 0
    assert (tmp_path / "es" / "figures" / "fitness.png").is_file()  # --plot drew it already
    assert figures(capsys, tmp_path / "es") == ["fitness.png"]
    assert run_cli(capsys, "evolve", "--population", 4, "--generations", 1, "--out", tmp_path / "ga")[0] == 0
    assert figures(capsys, tmp_path / "ga") == ["fitness.png", "output_heatmaps.png", "episode.png"]


@pytest.mark.parametrize("content, message", [
    ({}, "no run in"),
    ({"config.yaml": "agent: snn\n"}, "converted SNN"),
    ({"config.yaml": "agent: dqn\nenv_id: CartPole-v1\n"}, "no finished episode"),
    ({"config.yaml": "method: ga\n"}, "checkpoint"),
])
def test_what_cannot_be_drawn_is_one_line_and_exit_2(tmp_path, capsys, content, message):
    for name, text in content.items():
        (tmp_path / name).write_text(text)
    rc, _, err = run_cli(capsys, "plot", tmp_path)
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1
