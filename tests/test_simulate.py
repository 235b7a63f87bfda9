"""Whole-window simulation: time folding is exact, monitors count what happened."""

import torch
from torch import nn

from spikeverse.snn.neurons import IFNeuron, LIFNeuron
from spikeverse.snn.simulate import macs, run_window, synaptic_ops


def small_net():
    torch.manual_seed(0)
    return [nn.Conv2d(2, 4, 3, 1, padding=1), IFNeuron(v_th=0.5), nn.Conv2d(4, 4, 3, 2), IFNeuron(),
            nn.Flatten(), nn.Linear(4 * 3 * 3, 5), LIFNeuron(tau=5.0, reset="subtract"), nn.Linear(5, 3)]


def step_by_step(layers, x_seq):
    """Reference: every layer one time step at a time."""
    for m in layers:
        if hasattr(m, "reset"):
            m.reset()
    outs = []
    for x in x_seq:
        h = x
        for m in layers:
            h = m(h)
        outs.append(h)
    return torch.stack(outs)


def test_window_equals_step_by_step_simulation():
    layers = small_net()
    x = torch.rand(3, 2, 7, 7) * 2
    with torch.no_grad():
        out, rec = run_window(layers, x, 20, record=True)
        ref = step_by_step(layers, x.unsqueeze(0).expand(20, *x.shape))
        seq_out, _ = run_window(layers, x.unsqueeze(0).expand(20, *x.shape).clone(), constant_input=False)
    assert out.shape == (20, 3, 3)
    assert torch.allclose(out, ref, atol=1e-5) and torch.allclose(seq_out, ref, atol=1e-5)
    assert len(rec.spike_counts) == 3 and rec.spike_counts[0].sum() > 0
    # a second window starts from a reset state: same result
    with torch.no_grad():
        again, _ = run_window(layers, x, 20)
    assert torch.equal(out, again)


def test_monitors_counts_rates_membrane_and_traces():
    layers = small_net()
    x = torch.rand(2, 2, 7, 7) * 2
    with torch.no_grad():
        _, rec = run_window(layers, x, 16, record=True, record_traces=True)
    for counts, trace, v, neuron in zip(rec.spike_counts, rec.v_traces, rec.final_v, [layers[1], layers[3], layers[6]]):
        assert trace.shape[0] == 16 and torch.equal(trace[-1], v) and torch.equal(v, neuron.v)
    rates = rec.firing_rates()
    assert torch.allclose(rates[0], rec.spike_counts[0].flatten(1).mean(1) / 16)
    assert all(((r >= 0) & (r <= 1)).all() for r in rates)


def test_synaptic_operations_are_spikes_times_fan_out():
    lin = nn.Linear(6, 4)
    counts = torch.tensor([[1.0, 0, 2, 0, 0, 3]])
    assert synaptic_ops(lin, counts).item() == 6 * 4
    conv = nn.Conv2d(2, 3, 3, stride=2, padding=1)
    counts = torch.randint(0, 3, (1, 2, 5, 5)).float()
    # brute force: every (input spike, output position whose window covers it) pair, times out_channels
    cols = nn.functional.unfold(counts, 3, padding=1, stride=2)  # [1, 2*9, L]: inputs seen by each output
    assert synaptic_ops(conv, counts).item() == cols.sum().item() * 3


def test_synops_recorded_per_layer():
    layers = small_net()
    x = torch.rand(2, 2, 7, 7) * 2
    with torch.no_grad():
        _, rec = run_window(layers, x, 10, record=True)
    # the last neuron layer's spikes feed Linear(5, 3): synops = count x 3
    assert torch.allclose(rec.synops[2], rec.spike_counts[2].sum(1) * 3)
    assert rec.total_synops().shape == (2,)


def test_ann_macs():
    assert macs(nn.Linear(3136, 512), (3136,)) == 3136 * 512
    assert macs(nn.Conv2d(4, 32, 8, 4), (4, 84, 84)) == 20 * 20 * 32 * 4 * 8 * 8


def test_float64_and_gradients_flow_with_a_surrogate():
    from spikeverse.snn.surrogates import surrogate

    torch.manual_seed(0)
    layers = [nn.Linear(3, 8).double(), IFNeuron(spike_fn=surrogate("atan")), nn.Linear(8, 2).double()]
    x = torch.rand(4, 3, dtype=torch.float64)
    out, _ = run_window(layers, x, 8)
    out.mean(0).sum().backward()
    assert out.dtype == torch.float64 and layers[0].weight.grad.abs().sum() > 0


def test_result_does_not_depend_on_time_chunking():
    layers = small_net()
    x = torch.rand(3, 2, 7, 7) * 2
    with torch.no_grad():
        runs = [run_window(layers, x, 23, chunk=c, record=True) for c in (1, 7, 23)]
    for out, rec in runs[1:]:
        assert torch.equal(out, runs[0][0])
        assert all(torch.equal(a, b) for a, b in zip(rec.spike_counts, runs[0][1].spike_counts))


def test_default_chunk_keeps_the_widest_activation_within_the_cache_budget():
    from spikeverse.snn.simulate import CPU_CHUNK_BYTES, default_chunk

    step = 8 * 32 * 20 * 20 * 4  # B=8 Nature-CNN first layer, float32
    k = default_chunk(torch.device("cpu"), step, 100)
    assert 1 <= k < 100 and k * step <= CPU_CHUNK_BYTES < (k + 1) * step
    assert default_chunk(torch.device("cpu"), 10 * CPU_CHUNK_BYTES, 100) == 1  # never zero
    assert default_chunk(torch.device("cpu"), 16, 7) == 7  # never past the window
    assert default_chunk(torch.device("cuda"), step, 100) == 100  # one chunk on GPU


def test_tuned_allocator_keeps_results_identical():
    import sys

    from spikeverse.device import tune_cpu_allocator

    layers = [nn.Linear(5, 7), IFNeuron(), nn.Linear(7, 3), IFNeuron()]
    x = torch.randn(4, 5)
    before, _ = run_window(layers, x, 50)
    tuned = tune_cpu_allocator()
    if sys.platform.startswith("linux"):  # glibc: mallopt is there and accepts both settings
        assert tuned
    after, _ = run_window(layers, x, 50)
    assert torch.equal(before, after)
