"""Surrogate gradients: forward exactly H, backward the analytic derivative, g and g' consistent,
the published formulas, the factory, and BPTT through a spiking layer (SPEC R-SNN-SURR)."""

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from spikeverse.cli.app import main
from spikeverse.errors import SpikeverseError
from spikeverse.snn.surrogates import ALIASES, SURROGATES, heaviside, surrogate

NAMES = sorted(SURROGATES)
ALPHAS = (None, 0.5, 3.0)

# The formulas as published (seed 000 sec. 6.3, seed 003, seed 002 eq. 4-7), written independently.
REFERENCE = {
    "fast_sigmoid": lambda x, a: 1 / (1 + a * np.abs(x)) ** 2,
    "exponential": lambda x, a: np.exp(-(a * x) ** 2),
    "piecewise_linear": lambda x, a: np.maximum(0, 1 - a * np.abs(x)),
    "cosh": lambda x, a: 1 / np.cosh(a * x) ** 2,
    "atan": lambda x, a: a / 2 / (1 + (np.pi / 2 * a * x) ** 2),
    "rectangular": lambda x, a: np.where(np.abs(x) < a / 2, 1 / a, 0.0),
    "polynomial": lambda x, a: np.maximum(0, np.sqrt(a) / 2 - a / 4 * np.abs(x)),
    "sigmoid": lambda x, a: np.exp(-x / a) / (a * (1 + np.exp(-x / a)) ** 2),
    "gaussian": lambda x, a: np.exp(-x ** 2 / (2 * a)) / np.sqrt(2 * np.pi * a),
}


def grid(dtype=torch.float64):
    # 600 points: none on a kink (0, +-1/alpha, +-a/2, +-2/sqrt(a) for the alphas above)
    return torch.linspace(-3, 3, 600, dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", NAMES)
def test_forward_is_exactly_heaviside(name, dtype):
    s = surrogate(name)
    x = torch.tensor([-2.0, -1e-7, -0.0, 0.0, 1e-7, 0.5, 3.0], dtype=dtype).reshape(7, 1, 1).expand(7, 2, 3)
    out = s(x)
    expected = torch.tensor([0, 0, 1, 1, 1, 1, 1], dtype=dtype).reshape(7, 1, 1).expand(7, 2, 3)
    assert out.dtype == dtype and out.shape == x.shape
    assert torch.equal(out, expected)
    assert torch.equal(out, heaviside(x))


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("name", NAMES)
def test_backward_is_analytic_derivative_and_matches_primitive(name, alpha):
    s = surrogate(name, alpha)
    x = grid().requires_grad_(True)
    w = torch.linspace(0.5, 2.0, x.numel(), dtype=torch.float64)  # a non-uniform upstream gradient
    (s(x) * w).sum().backward()
    d = s.derivative(x.detach())
    torch.testing.assert_close(x.grad, w * d, rtol=0, atol=0)
    # g' agrees with the published formula ...
    ref = REFERENCE[name](x.detach().numpy(), s.alpha)
    np.testing.assert_allclose(d.numpy(), ref, rtol=1e-12, atol=1e-15)
    # ... and with a central finite difference of the primitive g
    h = 1e-6
    fd = (s.primitive(x.detach() + h) - s.primitive(x.detach() - h)) / (2 * h)
    np.testing.assert_allclose(fd.numpy(), d.numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_primitive_is_a_step_from_zero(name):
    s = surrogate(name)
    far = torch.tensor([-1e4, 1e4], dtype=torch.float64)
    lo, hi = s.primitive(far).tolist()
    assert lo == pytest.approx(0, abs=1e-3)
    area = {"fast_sigmoid": 2.0, "exponential": math.sqrt(math.pi), "piecewise_linear": 1.0, "cosh": 2.0}
    assert hi == pytest.approx(area.get(name, 1.0) / (s.alpha if name in area else 1.0), abs=1e-3)


@pytest.mark.parametrize("name", NAMES)
def test_float32_grad_keeps_dtype_and_shape(name):
    x = torch.randn(4, 3, 5, dtype=torch.float32, requires_grad=True)
    surrogate(name)(x).sum().backward()
    assert x.grad.dtype == torch.float32 and x.grad.shape == x.shape
    torch.testing.assert_close(x.grad, surrogate(name).derivative(x.detach()))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda():
    for name in NAMES:
        x = torch.linspace(-2, 2, 101, device="cuda", requires_grad=True)
        s = surrogate(name)
        out = s(x)
        out.sum().backward()
        assert out.device.type == "cuda"
        torch.testing.assert_close(x.grad.cpu(), s.derivative(x.detach().cpu()))


def test_factory_defaults_aliases_and_errors():
    assert set(NAMES) == {"fast_sigmoid", "exponential", "piecewise_linear", "cosh", "atan",
                          "rectangular", "polynomial", "sigmoid", "gaussian"}
    assert surrogate("atan").alpha == 2.0 and surrogate("atan", 4).alpha == 4.0
    assert surrogate("ARCTAN").name == "atan" and surrogate("fast-sigmoid").name == "fast_sigmoid"
    for alias, target in ALIASES.items():
        assert surrogate(alias).name == target
    # spot values at 0: peak heights that identify each curve
    zero = torch.zeros(1, dtype=torch.float64)
    peaks = {"fast_sigmoid": 1, "exponential": 1, "piecewise_linear": 1, "cosh": 1, "atan": 1.0,
             "rectangular": 1, "polynomial": 0.5, "sigmoid": 0.25, "gaussian": 1 / math.sqrt(2 * math.pi)}
    for name, peak in peaks.items():
        assert surrogate(name).derivative(zero).item() == pytest.approx(peak)
    with pytest.raises(SpikeverseError, match="fast_sigmoid.*gaussian"):
        surrogate("sigmoidal")
    with pytest.raises(SpikeverseError, match="positive"):
        surrogate("atan", 0.0)
    with pytest.raises(SpikeverseError, match="a1"):
        surrogate("rectangular", -1)


# --- BPTT through a spiking layer -----------------------------------------------------------------

def xor_blobs(n, g):
    c = torch.randint(0, 2, (n, 2), generator=g).float() * 2 - 1
    x = c + 0.25 * torch.randn(n, 2, generator=g)
    return x, (c[:, 0] * c[:, 1] > 0).long()


def train_snn(spike_fn, steps=100, T=8, hidden=16, seed=0):
    """Linear -> LIF (beta 0.9, threshold 1, reset by subtraction) over T steps of a constant input
    -> Linear readout of firing rates, trained by BPTT on four XOR blobs. The hidden layer starts
    silent (small weights, no bias): it only learns if gradients pass the spike function."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    x_tr, y_tr = xor_blobs(256, g)
    x_te, y_te = xor_blobs(512, g)
    fc, readout = nn.Linear(2, hidden), nn.Linear(hidden, 2)
    nn.init.normal_(fc.weight, std=0.02)
    nn.init.zeros_(fc.bias)
    w0 = fc.weight.detach().clone()

    def net(x):
        current = fc(x)
        v, count = torch.zeros_like(current), 0
        for _ in range(T):
            v = 0.9 * v + current
            s = spike_fn(v - 1.0)
            v = v - s
            count = count + s
        return readout(count / T)

    opt = torch.optim.Adam([*fc.parameters(), *readout.parameters()], lr=0.05)
    for _ in range(steps):
        loss = nn.functional.cross_entropy(net(x_tr), y_tr)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        acc = (net(x_te).argmax(1) == y_te).float().mean().item()
    return acc, not torch.equal(fc.weight.detach(), w0)


def test_bptt_learns_with_surrogate_and_not_without():
    acc, moved = train_snn(surrogate("atan"))
    assert moved and acc > 0.9
    acc0, moved0 = train_snn(heaviside)  # forward identical, zero gradient
    assert not moved0 and acc0 < 0.7


# --- CLI ---------------------------------------------------------------------------------------------

def test_cli_plot_and_json(tmp_path, capsys):
    png = tmp_path / "surr.png"
    assert main(["surrogates", "--plot", str(png), "--json", "--points", "11"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(out["surrogates"]) == set(NAMES) and len(out["x"]) == 11
    atan = out["surrogates"]["atan"]
    assert atan["param"] == "alpha" and atan["value"] == 2.0 and len(atan["derivative"]) == 11
    assert atan["derivative"][5] == pytest.approx(1.0) and atan["primitive"][5] == pytest.approx(0.5)


def test_cli_text_lists_all(capsys):
    assert main(["surrogates"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in NAMES)
