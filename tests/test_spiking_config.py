"""One set of names for the DSQN's spiking settings (snn.config.SpikingConfig), the Polyak rate's
own name, and checkpoint kinds that name what they hold (old names still load; issue 12)."""

import dataclasses
import json
from pathlib import Path

import pytest
import torch
import yaml

from spikeverse.cli.app import main
from spikeverse.errors import SpikeverseError
from spikeverse.io.checkpoint import LEGACY_KINDS, load_checkpoint, read_checkpoint_meta, save_checkpoint
from spikeverse.rl.config import DQNConfig, upgrade_config
from spikeverse.rl.dqn import network_spec
from spikeverse.rl.networks import NetworkSpec
from spikeverse.snn.config import SpikingConfig

LEGACY = Path(__file__).parent / "data" / "legacy_runs"
NEW_NAMES = {"timesteps", "surrogate", "alpha", "tau", "v_th", "reset", "init_rate"}
OLD_KEYS = {"tau", "snn_timesteps", "surrogate", "surrogate_alpha", "lif_tau", "lif_v_th", "lif_reset", "snn_init_rate"}


@pytest.mark.parametrize("bad,word", [
    (dict(timesteps=0), "--timesteps"), (dict(timesteps=2.5), "--timesteps"), (dict(tau=0), "--tau"),
    (dict(v_th=-1), "--v-th"), (dict(alpha=0), "--alpha"), (dict(reset="sideways"), "--reset"),
    (dict(init_rate=1.0), "--init-rate"), (dict(surrogate="nope"), "surrogate"), (dict(tau="x"), "spiking"),
])
def test_bad_spiking_settings_are_one_line_errors(bad, word):
    with pytest.raises(SpikeverseError, match=word) as e:
        SpikingConfig(**bad)
    assert "\n" not in str(e.value)


def test_spiking_config_round_trip_and_names():
    sp = SpikingConfig(timesteps=4, surrogate="sigmoid", alpha=0.5, tau=3.0, v_th=0.8, reset="soft", init_rate=0.0)
    d = sp.to_dict()
    assert set(d) == NEW_NAMES and SpikingConfig.from_dict(d) == sp
    assert SpikingConfig.from_dict({"timesteps": 4}) == SpikingConfig(timesteps=4)  # missing: defaults
    with pytest.raises(SpikeverseError, match="unknown spiking setting"):
        SpikingConfig.from_dict({**d, "lif_tau": 2.0})
    with pytest.raises(dataclasses.FrozenInstanceError):
        sp.tau = 1.0
    # the network spec holds it under the same names, and reads the dict of an old checkpoint
    cfg = DQNConfig.for_env("CartPole-v1", spiking=sp)
    spec = network_spec(cfg, (4,), 2)
    assert spec.spiking is sp and spec.to_dict()["spiking"] == d
    assert NetworkSpec.from_dict(spec.to_dict()) == spec
    old = read_checkpoint_meta(LEGACY / "dsqn")["network"]
    assert NetworkSpec.from_dict(old).spiking == SpikingConfig(timesteps=4)
    assert NetworkSpec.from_dict(read_checkpoint_meta(LEGACY / "dqn")["network"]).spiking is None


def test_dqn_config_uses_the_same_names_and_reads_old_configs():
    cfg = DQNConfig.for_env("CartPole-v1", spiking=True, polyak_tau=0.05)
    d = cfg.to_dict()
    assert d["polyak_tau"] == 0.05 and set(d["spiking"]) == NEW_NAMES and not OLD_KEYS & set(d)
    assert DQNConfig.from_dict(d) == cfg and DQNConfig.from_dict(upgrade_config(d)) == cfg
    assert DQNConfig.for_env("CartPole-v1").spiking is None
    with pytest.raises(SpikeverseError, match="unknown DQN option"):
        DQNConfig.for_env("CartPole-v1", tau=0.5)  # the Polyak rate's old name is no option
    with pytest.raises(SpikeverseError, match="polyak_tau"):
        DQNConfig.for_env("CartPole-v1", polyak_tau=0.0)
    # the config.yaml of a run written before issue 12: flat spiking keys, the Polyak rate as tau
    old = yaml.safe_load((LEGACY / "dsqn" / "config.yaml").read_text())
    assert OLD_KEYS <= set(old)
    cfg = DQNConfig.from_dict(old)
    assert cfg.polyak_tau == old["tau"] == 1.0 and cfg.hidden == (16,)
    assert cfg.spiking == SpikingConfig(timesteps=4, surrogate="atan", alpha=2.0, tau=2.0, v_th=1.0, reset="hard",
                                        init_rate=0.1)
    old = yaml.safe_load((LEGACY / "dqn" / "config.yaml").read_text())
    assert DQNConfig.from_dict(old).spiking is None and "polyak_tau" in upgrade_config(old)
    assert DQNConfig.from_dict({**old, "tau": 0.25}).polyak_tau == 0.25


def test_kind_aliases(tmp_path):
    p = tmp_path / "c.safetensors"
    save_checkpoint(p, {"w": torch.ones(2)}, {"kind": "evo"})  # a GA run of before issue 12
    assert LEGACY_KINDS["evo"] == "mountaincar_snn"
    assert read_checkpoint_meta(p)["kind"] == "mountaincar_snn"
    for kind in ("mountaincar_snn", "evo", ("dqn", "mountaincar_snn")):
        assert load_checkpoint(p, kind=kind)[1]["kind"] == "mountaincar_snn"
    with pytest.raises(SpikeverseError, match="holds a 'mountaincar_snn' checkpoint, expected 'dqn' or 'dsqn'"):
        load_checkpoint(p, kind=("dqn", "dsqn"))
    save_checkpoint(p, {"w": torch.ones(2)}, {"kind": "cartpole_snn"})
    with pytest.raises(SpikeverseError, match="expected 'mountaincar_snn'"):
        read_checkpoint_meta(p, kind="evo")


def test_old_checkpoints_load_under_todays_kinds():
    from spikeverse.agents import LOADERS, load_policy

    assert set(LOADERS) == {"dqn", "dsqn", "snn", "mountaincar_snn", "cartpole_snn", "tabular"}
    assert read_checkpoint_meta(LEGACY / "dsqn")["kind"] == "dqn"  # a DSQN of before it had its own kind
    policy, meta = load_policy(LEGACY / "dsqn")
    assert meta["kind"] == "dsqn" and policy.spec.spiking.timesteps == 4
    assert meta["config"]["spiking"]["timesteps"] == 4 and "lif_tau" not in meta["config"]
    assert load_policy(LEGACY / "dqn")[1]["kind"] == "dqn"
    assert load_policy(LEGACY / "ga")[1]["kind"] == "mountaincar_snn"


def test_a_new_dsqn_run_writes_todays_names(tmp_path, capsys):
    run = tmp_path / "d"
    assert main(["train", "--agent", "dsqn", "--steps", "200", "--timesteps", "3", "--tau", "4", "--v-th", "0.5",
                 "--alpha", "1.5", "--reset", "soft", "--init-rate", "0", "--hidden", "8", "--out", str(run),
                 "--json", "--no-progress", "--device", "cpu", "--eval-every", "0"]) == 0
    assert json.loads(capsys.readouterr().out)["agent"] == "dsqn"
    want = dict(timesteps=3, surrogate="atan", alpha=1.5, tau=4.0, v_th=0.5, reset="soft", init_rate=0.0)
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["spiking"] == want and config["polyak_tau"] == 1.0 and not OLD_KEYS & set(config)
    meta = read_checkpoint_meta(run)
    assert meta["kind"] == "dsqn" and meta["network"]["spiking"] == want and meta["config"]["spiking"] == want
    assert main(["evaluate", str(run), "--episodes", "1", "--json", "--device", "cpu", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["agent"] == "dsqn"
    # --vth is the old spelling of --v-th
    assert main(["train", "--agent", "dsqn", "--steps", "10", "--vth", "0", "--out", str(tmp_path / "x")]) == 2
    assert "--v-th" in capsys.readouterr().err
