"""The data-dependent initialisation of directly trained spiking networks (snn.init)."""

import pytest
import torch
from torch import nn

from spikeverse.snn.init import calibrate_firing
from spikeverse.snn.neurons import DSQNLIFNeuron
from spikeverse.snn.simulate import run_window


def _rates(layers, x, T):
    _, rec = run_window(layers, x, T, record=True)
    for m in layers:
        if hasattr(m, "reset"):
            m.reset()
    return [float(c.mean()) / T for c in rec.spike_counts]


@pytest.mark.parametrize("rate", [0.05, 0.2])
def test_every_spiking_layer_fires_at_the_target_rate(rate):
    torch.manual_seed(0)
    layers = [nn.Linear(6, 64), DSQNLIFNeuron(2.0), nn.Linear(64, 32), DSQNLIFNeuron(2.0)]
    x = torch.randn(400, 6) * 0.1  # too weak to drive any neuron to threshold
    assert max(_rates(layers, x, 16)) < 0.01
    w2 = layers[2].weight.detach().clone()
    scales = calibrate_firing(layers, x, 16, rate)
    assert len(scales) == 2 and all(s > 1 for s in scales)
    torch.testing.assert_close(layers[2].weight, w2 * scales[1])  # a scaling, nothing else
    # a spike-count rate is a step function of the scale: within a step of the target
    assert _rates(layers, x, 16) == pytest.approx([rate, rate], abs=0.02)


def test_an_overactive_layer_is_scaled_down_and_bad_rates_are_refused():
    torch.manual_seed(1)
    layers = [nn.Linear(3, 20), DSQNLIFNeuron(2.0)]
    x = torch.randn(200, 3) * 50
    (scale,) = calibrate_firing(layers, x, 8, 0.1)
    assert scale < 1 and _rates(layers, x, 8)[0] == pytest.approx(0.1, abs=0.03)
    with pytest.raises(ValueError):
        calibrate_firing(layers, x, 8, 1.5)
