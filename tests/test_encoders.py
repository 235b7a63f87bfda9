"""Input encoders: analog repeats, Poisson rates and seeding, bin and Gaussian population codes, the
encoder objects, and the ``encode`` command (SPEC R-SNN-ENC)."""

import json

import numpy as np
import pytest
import torch

from spikeverse.cli.app import main
from spikeverse.errors import SpikeverseError
from spikeverse.snn.encoders import (AnalogEncoder, PoissonEncoder, PopulationEncoder, analog, bin_code,
                                     gaussian_code, poisson, poisson_step)


def test_analog_repeats_input_without_copy():
    x = torch.randn(3, 2, 4, dtype=torch.float64)
    w = analog(x, 5)
    assert w.shape == (5, 3, 2, 4) and w.dtype == torch.float64
    for t in range(5):
        assert torch.equal(w[t], x)
    assert w.stride(0) == 0 and w.data_ptr() == x.data_ptr()  # T "copies" share one buffer
    assert analog(torch.tensor([[1, 2]]), 2).dtype == torch.float32  # integer input -> float current
    enc = AnalogEncoder()
    assert enc.constant and torch.equal(enc(x, 3)[2], x) and torch.equal(enc.step(x), x)
    with pytest.raises(SpikeverseError):
        analog(x, 0)


def test_poisson_rate_converges_to_intensity():
    x = torch.tensor([[0.0, 0.05, 0.3, 0.5, 0.9, 1.0, 1.7, -0.4]])
    T = 4000
    g = torch.Generator().manual_seed(1)
    s = poisson(x, T, generator=g)
    assert s.shape == (T, 1, 8) and set(s.unique().tolist()) <= {0.0, 1.0}
    p = x.clamp(0, 1)
    rate = s.mean(0)
    sigma = (p * (1 - p) / T).sqrt()
    assert bool(((rate - p).abs() <= 4 * sigma + 1e-12).all())
    assert rate[0, 0] == 0 and rate[0, 5] == 1 and rate[0, 6] == 1 and rate[0, 7] == 0  # clipped
    # gain = max_rate * dt scales the probability
    r2 = poisson(torch.full((1, 200), 0.2), 200, gain=2.0, generator=g).mean()
    assert abs(r2.item() - 0.4) < 4 * (0.4 * 0.6 / 40000) ** 0.5


def test_poisson_is_deterministic_given_seed():
    x = torch.rand(4, 3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a = poisson(x, 10, generator=torch.Generator().manual_seed(7))
    b = poisson(x, 10, generator=torch.Generator().manual_seed(7))
    c = poisson(x, 10, generator=torch.Generator().manual_seed(8))
    assert a.dtype == torch.float64 and a.shape == (10, 4, 3, 3)
    assert torch.equal(a, b) and not torch.equal(a, c)
    e1, e2 = PoissonEncoder(gain=1.0, seed=3), PoissonEncoder(gain=1.0, seed=3)
    assert torch.equal(e1(x, 6), e2(x, 6)) and torch.equal(e1.step(x), e2.step(x))
    assert not e1.constant
    st = poisson_step(x, generator=torch.Generator().manual_seed(7))
    assert st.shape == x.shape and set(st.unique().tolist()) <= {0.0, 1.0}


def test_bin_code_one_hot_and_clamping():
    x = torch.tensor([-0.5, 0.0, 0.1, 0.3, 0.55, 0.99, 1.0, 7.0]).unsqueeze(-1)  # [B=8, D=1]
    out = bin_code(x, 4, 0.0, 1.0)
    assert out.shape == (8, 4)
    assert out.argmax(1).tolist() == [0, 0, 0, 1, 2, 3, 3, 3]
    assert torch.equal(out.sum(1), torch.ones(8))
    assert set(out.unique().tolist()) == {0.0, 1.0}


def test_bin_code_per_variable_bounds():
    # Mountain Car (seed 002): position in [-1.2, 0.6], velocity in [-0.07, 0.07], 30 neurons each
    x = torch.tensor([[-0.5, 0.01], [0.6, -0.2], [-3.0, 0.0699]])
    out = bin_code(x, 30, [-1.2, -0.07], [0.6, 0.07])
    assert out.shape == (3, 60)
    blocks = out.reshape(3, 2, 30)
    assert torch.equal(blocks.sum(-1), torch.ones(3, 2))
    expect_pos = [int((-0.5 + 1.2) / 1.8 * 30), 29, 0]
    expect_vel = [int((0.01 + 0.07) / 0.14 * 30), 0, 29]
    assert blocks[:, 0].argmax(-1).tolist() == expect_pos
    assert blocks[:, 1].argmax(-1).tolist() == expect_vel
    with pytest.raises(SpikeverseError, match="high > low"):
        bin_code(x, 4, 1.0, 1.0)


def test_gaussian_receptive_fields():
    x = torch.tensor([[0.5], [0.26], [-3.0], [0.0], [1.0], [9.0]])
    r = gaussian_code(x, 5, 0.0, 1.0)  # centres 0, .25, .5, .75, 1; sigma = .25
    assert r.shape == (6, 5)
    assert r.argmax(1).tolist() == [2, 1, 0, 0, 4, 4]
    assert r[0, 2] == pytest.approx(1.0)
    assert r[0, 1] == pytest.approx(np.exp(-0.5)) and r[0, 3] == pytest.approx(np.exp(-0.5))
    assert torch.equal(r[2], r[3]) and torch.equal(r[4], r[5])  # outside [low, high] clamps to the edge
    narrow = gaussian_code(torch.tensor([[0.5]]), 5, 0.0, 1.0, sigma=0.05)
    assert narrow[0, 1] == pytest.approx(np.exp(-12.5)) and narrow[0, 2] == pytest.approx(1.0)
    with pytest.raises(SpikeverseError):
        gaussian_code(x, 5, 0.0, 1.0, sigma=0.0)


def test_population_encoder_current_and_spikes():
    x = torch.tensor([[0.1, 0.8]], dtype=torch.float64)
    cur = PopulationEncoder(n=4, low=0.0, high=1.0)
    w = cur(x, 6)
    assert cur.constant and w.shape == (6, 1, 8) and w.dtype == torch.float64
    assert w[0, 0].nonzero().flatten().tolist() == [0, 7]
    spk = PopulationEncoder(n=4, low=0.0, high=1.0, spikes=True, seed=0)
    s = spk(x, 6)
    assert not spk.constant and torch.equal(s, w)  # rates 0/1: spikes fire every step or never
    g = PopulationEncoder(n=5, low=0.0, high=1.0, kind="gaussian", spikes=True, seed=0)(x, 500)
    assert set(g.unique().tolist()) == {0.0, 1.0}
    torch.testing.assert_close(g.mean(0), gaussian_code(x, 5, 0.0, 1.0), atol=0.1, rtol=0)
    with pytest.raises(SpikeverseError, match="bin or gaussian"):
        PopulationEncoder(n=4, low=0.0, high=1.0, kind="onehot")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_outputs_and_cpu_generator_reproducibility():
    x = torch.rand(2, 5)
    g_cpu = poisson(x, 7, generator=torch.Generator().manual_seed(1))
    g_gpu = poisson(x.cuda(), 7, generator=torch.Generator().manual_seed(1))
    assert g_gpu.device.type == "cuda" and torch.equal(g_cpu, g_gpu.cpu())
    assert bin_code(x.cuda(), 3, 0.0, 1.0).device.type == "cuda"
    assert gaussian_code(x.cuda(), 3, 0.0, 1.0).device.type == "cuda"


# --- CLI ---------------------------------------------------------------------------------------------

def test_cli_encode_poisson_plot(tmp_path, capsys):
    png = tmp_path / "x.png"
    assert main(["encode", "--encoder", "poisson", "--timesteps", "20", "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "64 neurons x 20 steps" in capsys.readouterr().out


def test_cli_encode_json_from_npy(tmp_path, capsys):
    img = np.array([[0.0, 0.25], [0.5, 1.0]])
    path = tmp_path / "img.npy"
    np.save(path, img)
    assert main(["encode", "--image", str(path), "--encoder", "analog", "--timesteps", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["shape"] == [2, 2] and out["neurons"] == 4 and out["rates"] == img.reshape(-1).tolist()
    assert main(["encode", "--image", str(path), "--encoder", "bin", "--bins", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["neurons"] == 16 and out["rates"] == [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]


def test_cli_encode_user_errors(tmp_path, capsys):
    assert main(["encode", "--digit", "12"]) == 2
    assert main(["encode", "--encoder", "latency"]) == 2
    assert main(["encode", "--image", str(tmp_path / "missing.png")]) == 2
    assert main(["encode", "--timesteps", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 4 and "0-9" in err and "poisson, analog, bin" in err
