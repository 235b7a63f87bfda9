"""Checkpoints: round trip, atomicity, and one-line errors for bad files."""

import pytest
import torch
from safetensors.torch import save_file

from spikeverse.errors import SpikeverseError
from spikeverse.io.checkpoint import (
    load_checkpoint, load_module_state, optimizer_from_flat, optimizer_to_flat, read_checkpoint_meta, save_checkpoint,
)


def test_round_trip_with_optimizer_state(tmp_path):
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    net(torch.randn(4, 3)).sum().backward()
    opt.step()
    t, m = optimizer_to_flat(opt)
    save_checkpoint(tmp_path / "c.safetensors", {**{f"o.{k}": v for k, v in t.items()}, "w": net.weight},
                    {"kind": "test", "optimizer": m, "step": 7})
    tensors, meta = load_checkpoint(tmp_path / "c.safetensors", kind="test")
    assert meta["step"] == 7 and torch.equal(tensors["w"], net.weight.detach())
    assert read_checkpoint_meta(tmp_path / "c.safetensors", kind="test") == meta  # header only
    opt2 = torch.optim.Adam(torch.nn.Linear(3, 2).parameters(), lr=0.5)
    optimizer_from_flat(opt2, {k[2:]: v for k, v in tensors.items() if k.startswith("o.")}, meta["optimizer"])
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s2["param_groups"][0]["lr"] == 0.01
    for i in s1["state"]:
        for key in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(s1["state"][i][key], s2["state"][i][key])
    assert not list(tmp_path.glob(".*.tmp"))  # no temp file left behind


def test_missing_truncated_foreign_and_nan(tmp_path):
    p = tmp_path / "c.safetensors"
    with pytest.raises(SpikeverseError, match="no checkpoint"):
        load_checkpoint(p)
    save_checkpoint(p, {"w": torch.ones(100, 100)}, {"kind": "dqn"})
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(SpikeverseError, match="truncated or corrupted"):
        load_checkpoint(p)
    p.write_bytes(b"garbage")
    with pytest.raises(SpikeverseError, match="truncated or corrupted"):
        load_checkpoint(p)
    save_file({"w": torch.ones(2)}, str(p))  # a safetensors file from elsewhere
    with pytest.raises(SpikeverseError, match="not a spikeverse checkpoint"):
        load_checkpoint(p)
    with pytest.raises(SpikeverseError, match="not a spikeverse checkpoint"):
        read_checkpoint_meta(p)
    save_checkpoint(p, {"w": torch.tensor([1.0, float("nan")])}, {"kind": "dqn"})
    with pytest.raises(SpikeverseError, match="NaN"):
        load_checkpoint(p)
    save_checkpoint(p, {"w": torch.ones(2)}, {"kind": "tabular"})
    with pytest.raises(SpikeverseError, match="expected 'dqn'"):
        load_checkpoint(p, kind="dqn")


def test_architecture_mismatch_is_one_line(tmp_path):
    with pytest.raises(SpikeverseError, match="architecture mismatch at 'weight'") as e:
        load_module_state(torch.nn.Linear(3, 2), torch.nn.Linear(4, 2).state_dict(), "ckpt")
    assert "\n" not in str(e.value)
    with pytest.raises(SpikeverseError, match="architecture mismatch"):
        load_module_state(torch.nn.Linear(3, 2), {"weight": torch.ones(2, 3)}, "ckpt")
