"""NIR export and import (issue 17): every spiking agent kind round-trips through a .nir file with
the same actions and Q-values, the file is plain NIR (``nir.read``), the graph alone is the
hard-reset re-simulation, another tool's graph loads, and bad input is a one-line error."""

import copy
import json
import os
from pathlib import Path

import nir
import numpy as np
import pytest
import torch
from torch import nn

from spikeverse.agents import export_nir, load_policy
from spikeverse.cli.app import main
from spikeverse.convert import activation_stats, convert_ann, from_module, save_snn
from spikeverse.errors import SpikeverseError
from spikeverse.io.checkpoint import save_checkpoint
from spikeverse.io.nir import DT, AgentInfo, GraphNetwork, load, policy_from_graph, read_graph, write_graph
from spikeverse.io.nir.nodes import if_neurons, sequential_graph
from spikeverse.models.cartpole_snn import CartPoleSNN, SNNPolicy
from spikeverse.models.mountaincar_snn import MountainCarSNN
from spikeverse.rl.config import DQNConfig
from spikeverse.rl.dqn import network_spec
from spikeverse.rl.networks import QNetwork
from spikeverse.snn.config import SpikingConfig
from spikeverse.snn.neurons import IFNeuron
from test_convert import _flat_mlp

pytestmark = pytest.mark.usefixtures("one_thread")
DATA = Path(__file__).parent / "data"
SCALE = torch.tensor([1.0, 1.0, 0.1, 1.0])


def cartpole_obs(n=256, seed=0):
    return torch.randn(n, 4, generator=torch.Generator().manual_seed(seed)) * SCALE


def minatar_obs(n=64, seed=0):
    return (torch.rand(n, 4, 10, 10, generator=torch.Generator().manual_seed(seed)) < 0.15).float()


def _cli(capsys, *args):
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def _round_trip(run_dir: Path, obs: torch.Tensor, tmp_path: Path, *, atol=1e-5):
    """Export run_dir, read it back with nir.read and spikeverse's loader; same actions and Q."""
    path = tmp_path / f"{run_dir.name}.nir"
    report = export_nir(run_dir, path, check_frames=0)
    graph = nir.read(path)  # plain NIR: its own reader takes it
    assert isinstance(graph, nir.NIRGraph) and report["out"] == str(path)
    original, _ = load_policy(run_dir)
    loaded, meta = load_policy(path)
    assert meta["kind"] == "nir" and meta["agent"] == report["agent"]
    for p in (original, loaded):
        if hasattr(p, "reset_generator"):
            p.reset_generator()
    q_a, q_b = original.q_values(obs).detach(), loaded.q_values(obs)
    assert torch.equal(q_a.argmax(-1), q_b.argmax(-1))
    torch.testing.assert_close(q_b, q_a.float(), atol=atol, rtol=1e-5)
    return graph, report, loaded


def _snn_dir(tmp_path, method, *, conv=False, readout=None, **extra):
    if conv:
        torch.manual_seed(3)
        seq = nn.Sequential(nn.Conv2d(4, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 32), nn.ReLU(),
                            nn.Linear(32, 3))
        flat, obs, env = from_module(seq, input_shape=(4, 10, 10)), minatar_obs(300, 1), "MinAtar/Breakout"
    else:
        flat, obs, env = _flat_mlp((4, 32, 32, 2), 0)[1], cartpole_obs(300, 1), "CartPole-v1"
    stats = activation_stats(flat, obs, 99)
    options = dict(levels=0) if method == "fast" else {}
    snn, info = convert_ann(flat, method=method, stats=stats, timesteps=16, readout=readout, **options, **extra)
    d = tmp_path / f"{method}{'-conv' if conv else ''}{'-' + readout if readout else ''}"
    save_snn(d, snn, flat, dict(env_id=env, **info))
    return d, snn


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("method,readout", [("naive", None), ("tan", None), ("fast", None), ("tan", "count"),
                                            ("fast", "rate")])
def test_converted_snns_round_trip(tmp_path, method, readout):
    d, snn = _snn_dir(tmp_path, method, readout=readout)
    graph, report, loaded = _round_trip(d, cartpole_obs(), tmp_path)
    kinds = [type(n).__name__ for n in graph.nodes.values()]
    neuron = "LIF" if method == "naive" else "IF"
    output_layer = snn.readout in ("count", "rate")
    assert kinds.count(neuron) == 2 + output_layer and kinds.count("Affine") == 3
    first = graph.nodes[f"{neuron.lower()}0"]
    assert first.v_reset.max() == 0 and first.v_threshold.min() == 1
    md = graph.metadata
    assert md["producer"] == "spikeverse" and md["env_id"] == "CartPole-v1" and md["timesteps"] == 16
    assert md["dt"] == DT and md["reset"] == ("hard" if method == "naive" else "subtract")
    if neuron == "IF":  # one Euler step of dv/dt = R I at dt adds the input current
        assert np.allclose(first.r * DT, 1.0)
        assert first.metadata["spikeverse_reset"] == "subtract"
        assert first.metadata["spikeverse_v_init"] == pytest.approx(snn.v_init)
        assert any("reset by subtraction" in line for line in report["differs"])
    else:  # seed 000's LIF: e^{-1/tau} per step is Euler's 1 - dt/tau_NIR
        assert np.allclose(1 - DT / first.tau, np.exp(-1 / snn.tau)) and np.allclose(first.r, 1)
        assert md["encoding"] == "signed_poisson"
    assert (method == "fast") == any("initial membrane" in line for line in report["differs"])


def test_a_minatar_shaped_conv_snn_round_trips(tmp_path):
    d, _ = _snn_dir(tmp_path, "fast", conv=True)
    graph, _, _ = _round_trip(d, minatar_obs(), tmp_path)
    conv, flat = graph.nodes["conv0"], graph.nodes["flatten0"]
    assert tuple(conv.weight.shape) == (8, 4, 3, 3) and list(conv.output_type["output"]) == [8, 8, 8]
    assert flat.start_dim == 0 and list(flat.output_type["output"]) == [512]  # NIR's dims: no batch


def _dsqn_dir(tmp_path, name="dsqn", *, arch="mlp", obs=(4,), actions=2, env="CartPole-v1", gain=3.0, spiking=None,
              obs_scale=1.0, **over):
    cfg = DQNConfig.for_env(env, spiking=SpikingConfig(timesteps=8, **(spiking or {})), arch=arch, hidden=(32,),
                            **over)
    spec = network_spec(cfg, obs, actions, obs_scale=obs_scale)
    torch.manual_seed(0)
    net = QNetwork(spec)
    with torch.no_grad():
        for m in net.torso:
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                m.weight.mul_(gain)  # fire a fair share
    d = tmp_path / name
    d.mkdir()
    save_checkpoint(d / "checkpoint.safetensors", {f"online.{k}": v for k, v in net.state_dict().items()},
                    {"kind": "dsqn", "network": spec.to_dict(), "env_id": env})
    return d


def test_a_dsqn_round_trips_as_euler_lif_and_its_head(tmp_path):
    graph, report, _ = _round_trip(_dsqn_dir(tmp_path), cartpole_obs(), tmp_path)
    lif = graph.nodes["lif0"]
    assert np.allclose(DT / lif.tau, 0.5) and np.allclose(lif.r, 1)  # U = V + (I - V)/2: Euler at dt, tau = 2 dt
    assert graph.metadata["readout"] == "mean" and list(graph.nodes["affine1"].weight.shape) == [2, 32]
    assert not any("reset by subtraction" in line for line in report["differs"])  # hard reset, as NIR's


def test_a_dueling_soft_reset_dsqn_and_a_minatar_dsqn_round_trip(tmp_path):
    graph, report, _ = _round_trip(_dsqn_dir(tmp_path, "duel", dueling=True, spiking=dict(reset="soft"), obs_scale=0.5,
                                             gain=6.0), cartpole_obs(), tmp_path)
    assert any("reset by subtraction" in line for line in report["differs"])
    assert graph.metadata["observation_scale"] == 0.5  # folded into the first layer: the graph takes raw observations
    _round_trip(_dsqn_dir(tmp_path, "minatar", arch="minatar", obs=(4, 10, 10), actions=3, env="MinAtar/Breakout"),
                minatar_obs(), tmp_path)


def test_the_evolved_cartpole_snn_round_trips(tmp_path):
    net = CartPoleSNN()
    d = tmp_path / "es"
    d.mkdir()
    SNNPolicy(net, np.random.default_rng(0).normal(0, 0.5, net.n_params)).save(d / "checkpoint.safetensors", {})
    graph, _, loaded = _round_trip(d, cartpole_obs(), tmp_path, atol=0)
    assert loaded.dtype == torch.float64 and graph.metadata["encoding"] == "gaussian_regular"
    pool = graph.nodes["populations"].weight
    assert pool.shape == (2, 20) and pool.sum() == 20  # each population's spikes, summed in the graph


def test_an_rstdp_run_exports_and_plays_through_the_cli(tmp_path, capsys):
    d, path = tmp_path / "rstdp", tmp_path / "rstdp.nir"
    assert _cli(capsys, "train", "--env", "CartPole-v1", "--agent", "rstdp", "--steps", 3, "--no-progress",
                "--out", d)[0] == 0
    rc, out, err = _cli(capsys, "export", d, "--format", "nir", "--out", path, "--check-frames", 40, "--json")
    assert rc == 0 and path.exists()
    report = json.loads(out)
    assert report["agent"] == "cartpole_snn" and report["checks"]["round_trip_agreement"] == 1.0
    assert "warning: spike test" in err
    _round_trip(d, cartpole_obs(), tmp_path, atol=0)
    rc, out, _ = _cli(capsys, "evaluate", path, "--episodes", 2, "--epsilon", 0, "--json")
    assert rc == 0
    played = json.loads(out)
    rc, out, _ = _cli(capsys, "evaluate", d, "--episodes", 2, "--epsilon", 0, "--json")
    assert played["agent"] == "nir" and played["scores"] == json.loads(out)["scores"]


def _mountaincar_dir(tmp_path, **net_options):
    net = MountainCarSNN(**net_options)
    d = tmp_path / "ga"
    d.mkdir(exist_ok=True)
    genome = net.initial_population(np.random.default_rng(1), 1)[0]
    save_checkpoint(d / "checkpoint.safetensors", {"best": torch.from_numpy(genome)},
                    {"kind": "mountaincar_snn", "env_id": "MountainCar-v0", "config": {"network": net.to_dict()}})
    return d


@pytest.mark.parametrize("tie", ["right", "left"])
def test_the_evolved_mountaincar_snn_round_trips(tmp_path, tie):
    obs = torch.as_tensor(np.random.default_rng(0).uniform([-1.2, -0.07], [0.6, 0.07], size=(256, 2)),
                          dtype=torch.float32)
    graph, _, loaded = _round_trip(_mountaincar_dir(tmp_path, tie=tie), obs, tmp_path, atol=0)
    assert graph.metadata["ties"] == ("last" if tie == "right" else "first")
    assert [type(n).__name__ for n in graph.nodes.values()].count("LIF") == 2


def test_export_records_its_check_and_evaluate_plays_the_file(tmp_path, capsys):
    d, _ = _snn_dir(tmp_path, "tan")
    path = tmp_path / "agent.nir"
    rc, out, err = _cli(capsys, "export", d, "--out", path, "--check-frames", 24)
    assert rc == 0 and "warning: reset by subtraction" in err and "takes the agent's action on" in err
    checks = AgentInfo.from_metadata(nir.read(path).metadata).checks
    assert checks["frames"] <= 24 and checks["round_trip_agreement"] == 1.0
    assert 0.0 <= checks["nir_semantics_agreement"] <= 1.0
    rc, out, _ = _cli(capsys, "evaluate", path, "--env", "CartPole-v1", "--episodes", 2, "--json")
    assert rc == 0 and json.loads(out)["env"] == "CartPole-v1"
    rc, out, _ = _cli(capsys, "evaluate", path, "--semantics", "nir", "--timesteps", 8, "--episodes", 2, "--json")
    assert rc == 0 and json.loads(out)["agent"] == "nir"


# ----------------------------------------------------------------------------- semantics


def _hard_reset_copy(snn):
    """The converted SNN with every IF neuron reset to 0 and started at 0: NIR's IF."""
    hard = copy.deepcopy(snn)
    for i, m in enumerate(hard.layers):
        if isinstance(m, IFNeuron):
            hard.layers[i] = IFNeuron(snn.v_th, reset="hard", v_init=0.0)
    return hard


def test_the_graph_alone_is_the_hard_reset_re_simulation(tmp_path):
    d, snn = _snn_dir(tmp_path, "fast", readout="count")
    path = tmp_path / "fast.nir"
    export_nir(d, path, check_frames=0)
    obs = cartpole_obs(512) * 3  # strong inputs: many spikes, large residues above threshold
    alone = load(path, semantics="nir").q_values(obs)
    torch.testing.assert_close(alone, _hard_reset_copy(snn).q_values(obs), atol=0, rtol=0)
    own = load(path).q_values(obs)
    assert torch.equal(own, snn.q_values(obs)) and not torch.equal(own, alone)  # the reset matters here


def test_spike_test_reset_and_start_follow_the_semantics():
    """One IF neuron at input 0.5 per step for 4 steps: spikeverse (V(0) = 0, v >= 1, subtract) fires
    at steps 2 and 4; NIR (v > 1, reset to 0) only at step 3, where v = 1.5; with V(0) = 0.5
    spikeverse fires at steps 1 and 3."""
    def graph(v_init):
        info = AgentInfo(timesteps=4, dt=DT)
        return sequential_graph([("if0", if_neurons((1,), 1.0, reset="subtract", v_init=v_init))], (1,), info)

    x = torch.full((1, 1), 0.5)
    for v_init, semantics, expected in ((0.0, "spikeverse", [0, 1, 0, 1]), (0.0, "nir", [0, 0, 1, 0]),
                                        (0.5, "spikeverse", [1, 0, 1, 0]), (0.5, "nir", [0, 0, 1, 0])):
        net = GraphNetwork(graph(v_init), dt=DT, semantics=semantics)
        assert net.run(x, 4, constant=True)[:, 0, 0].tolist() == expected, (v_init, semantics)


def test_another_tools_graph_loads_and_reproduces_it():
    """tests/data/snntorch_leaky.nir was written by snnTorch 1.0.0's export_to_nir (Linear, Leaky
    reset to zero, Linear, Leaky: LIF with tau = dt/(1 - beta), r = tau/dt); snnTorch's own spike
    counts on the same inputs are in the JSON beside it (benchmarks/peer_nir.py fixture)."""
    expected = json.loads((DATA / "snntorch_leaky.json").read_text())
    with pytest.raises(SpikeverseError, match="timesteps"):
        load(DATA / "snntorch_leaky.nir")
    policy = load(DATA / "snntorch_leaky.nir", timesteps=expected["timesteps"])
    assert policy.info.producer is None and policy.dt == DT  # snnTorch's fixed step
    counts = policy.q_values(torch.tensor(expected["inputs"]))
    assert counts.tolist() == expected["spike_counts"]


def test_a_foreign_graph_runs_with_nir_semantics_under_both():
    """A graph without spikeverse's metadata (CubaLIF, Scale, Linear) runs the same either way,
    and its CubaLIF integrates as the Euler step says."""
    w = np.array([[1.5, -0.5], [0.25, 2.0]], dtype=np.float32)
    cuba = nir.CubaLIF(tau_syn=np.full(2, 2e-4, np.float32), tau_mem=np.full(2, 4e-4, np.float32),
                       r=np.ones(2, np.float32), v_leak=np.zeros(2, np.float32),
                       v_threshold=np.full(2, 0.3, np.float32), w_in=np.ones(2, np.float32))
    g = nir.NIRGraph.from_list(nir.Linear(weight=w), nir.Scale(scale=np.full(2, 2.0, np.float32)), cuba)
    x = torch.tensor([[1.0, 0.5], [0.2, 0.1]])
    outs = [policy_from_graph(g, timesteps=6, semantics=s).q_values(x) for s in ("spikeverse", "nir")]
    assert torch.equal(outs[0], outs[1])
    cur, i, v, n = (x @ torch.tensor(w).T) * 2, torch.zeros(2, 2), torch.zeros(2, 2), torch.zeros(2, 2)
    for _ in range(6):
        i = i + 0.5 * (cur - i)
        v = v + 0.25 * (-v + i)
        s = (v > 0.3).float()
        n, v = n + s, torch.where(s > 0, 0.0, v)
    assert torch.equal(outs[0], n)


# ----------------------------------------------------------------------------- errors


def _one_line_error(capsys, *args, match: str):
    rc, out, err = _cli(capsys, *args)
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err and match in err, err
    return err


def test_bad_input_is_one_line_and_leaves_no_file(tmp_path, capsys):
    d, _ = _snn_dir(tmp_path, "tan")
    out = tmp_path / "x.nir"
    _one_line_error(capsys, "export", d, "--format", "onnx", "--out", out, match="unknown export format 'onnx'")
    _one_line_error(capsys, "export", d, "--out", tmp_path / "x.h5", match="ends in .nir")
    _one_line_error(capsys, "export", tmp_path / "nothing", "--out", out, match="no run directory")
    _one_line_error(capsys, "export", d, "--out", out, "--check-frames", -1, match="--check-frames")
    _one_line_error(capsys, "export", d, "--out", out, "--check-frames", 0, "--seed", 3, match="--seed applies")
    assert not out.exists() and not list(tmp_path.glob(".x.nir*"))
    _one_line_error(capsys, "evaluate", d, "--env", "CartPole-v1", match="--env applies to .nir files only")
    (tmp_path / "junk.nir").write_bytes(os.urandom(2048))
    _one_line_error(capsys, "evaluate", tmp_path / "junk.nir", "--env", "CartPole-v1", match="not HDF5")
    import h5py

    with h5py.File(tmp_path / "other.nir", "w") as f:
        f["data"] = np.ones(3)
    _one_line_error(capsys, "evaluate", tmp_path / "other.nir", "--env", "CartPole-v1", match="not a NIR graph")
    assert export_nir(d, out, check_frames=0)["out"] == str(out)
    _one_line_error(capsys, "evaluate", out, "--env", "MountainCar-v0", match="exported for CartPole-v1")
    _one_line_error(capsys, "evaluate", out, "--semantics", "loihi", match="unknown semantics")


def test_agents_without_a_nir_form_are_refused_naming_why(tmp_path, capsys):
    spec = network_spec(DQNConfig.for_env("CartPole-v1"), (4,), 2)
    dqn = tmp_path / "dqn"
    dqn.mkdir()
    save_checkpoint(dqn / "checkpoint.safetensors", {f"online.{k}": v for k, v in QNetwork(spec).state_dict().items()},
                    {"kind": "dqn", "network": spec.to_dict(), "env_id": "CartPole-v1"})
    _one_line_error(capsys, "export", dqn, "--out", tmp_path / "a.nir", match="convert it first")
    _one_line_error(capsys, "export", _mountaincar_dir(tmp_path, neuron="iaf_psc_alpha"), "--out",
                    tmp_path / "a.nir", match="neuron='iaf_psc_alpha'")
    _one_line_error(capsys, "export", _mountaincar_dir(tmp_path, tie="none"), "--out", tmp_path / "a.nir",
                    match="tie='none'")
    c51 = _dsqn_dir(tmp_path, "c51", c51=True)
    _one_line_error(capsys, "export", c51, "--out", tmp_path / "a.nir", match="C51 head")
    assert not (tmp_path / "a.nir").exists()


def _write(graph, path):
    """A graph as a file, the way any NIR writer would (nir.write, no checks of ours)."""
    nir.write(path, graph)
    return path


def test_unsupported_nodes_and_parameters_are_named(tmp_path, capsys):
    lif = nir.LIF(tau=np.full(3, 1e-3, np.float32), r=np.ones(3, np.float32), v_leak=np.zeros(3, np.float32),
                  v_threshold=np.ones(3, np.float32))
    aff = nir.Affine(weight=np.ones((3, 4), np.float32), bias=np.zeros(3, np.float32))
    pool = _write(nir.NIRGraph.from_list(aff, lif, nir.Delay(delay=np.ones(3, np.float32))), tmp_path / "delay.nir")
    _one_line_error(capsys, "evaluate", pool, "--env", "CartPole-v1", "--timesteps", 4,
                    match="node 'delay' is a NIR Delay, which spikeverse does not simulate")
    bad_tau = nir.LIF(tau=np.zeros(3, np.float32), r=np.ones(3, np.float32), v_leak=np.zeros(3, np.float32),
                      v_threshold=np.ones(3, np.float32))
    path = _write(nir.NIRGraph.from_list(aff, bad_tau), tmp_path / "tau.nir")
    with pytest.raises(SpikeverseError, match=r"node 'lif' \(LIF\) has tau <= 0"):
        load(path, timesteps=4)
    nan = nir.Affine(weight=np.full((3, 4), np.nan, np.float32), bias=np.zeros(3, np.float32))
    path = _write(nir.NIRGraph.from_list(nan, lif), tmp_path / "nan.nir")
    with pytest.raises(SpikeverseError, match="node 'affine' .* NaN or infinite weight"):
        read_graph(path)
    with pytest.raises(SpikeverseError, match="NaN or infinite weight"):
        write_graph(tmp_path / "nan2.nir", nir.NIRGraph.from_list(nan, lif))
    assert not (tmp_path / "nan2.nir").exists()
    loop = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([4])}), "a": aff, "lif": lif,
                               "w": nir.Linear(weight=np.eye(3, dtype=np.float32)),
                               "output": nir.Output(output_type={"output": np.array([3])})},
                        edges=[("input", "a"), ("a", "lif"), ("lif", "w"), ("w", "lif"), ("lif", "output")],
                        type_check=False)
    with pytest.raises(SpikeverseError, match="cycle"):
        policy_from_graph(loop, timesteps=4)


# ----------------------------------------------------------------------------- other simulators

PEER = os.environ.get("SPIKEVERSE_NIR_PEER_PYTHON")  # a python with snnTorch and/or Norse (benchmarks/peer_nir.py)


def _peer_simulators() -> list[tuple[str, str]]:
    """(python, simulator) pairs that can run benchmarks/peer_nir.py: this python if it has them, or
    SPIKEVERSE_NIR_PEER_PYTHON's."""
    import importlib.util
    import subprocess
    import sys

    out = []
    for sim in ("snntorch", "norse"):
        if importlib.util.find_spec(sim) is not None:
            out.append((sys.executable, sim))
        elif PEER and subprocess.run([PEER, "-c", f"import {sim}"], capture_output=True).returncode == 0:
            out.append((PEER, sim))
    return out


@pytest.mark.skipif(not _peer_simulators(),
                    reason="neither snnTorch nor Norse importable (set SPIKEVERSE_NIR_PEER_PYTHON)")
def test_other_simulators_run_our_graphs_as_the_hard_reset_re_simulation(tmp_path):
    """snnTorch's and Norse's own NIR importers on our files: where they import the graph, their
    output sums equal spikeverse's re-simulation of the graph alone (semantics "nir")."""
    import subprocess

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "peer_nir.py"
    d_tan, _ = _snn_dir(tmp_path, "tan")
    agents = {"tan": d_tan, "dsqn": _dsqn_dir(tmp_path)}
    es = tmp_path / "es"
    es.mkdir()
    SNNPolicy(CartPoleSNN(), np.random.default_rng(0).normal(0, 0.5, CartPoleSNN().n_params)).save(
        es / "checkpoint.safetensors", {})
    agents["es"] = es
    obs = cartpole_obs(64) * 2
    ran = 0
    for name, d in agents.items():
        path = tmp_path / f"{name}.nir"
        export_nir(d, path, check_frames=0)
        policy = load(path, semantics="nir")
        x, constant = policy.encode(obs)
        expected = policy.network.run(x.to(policy.dtype), policy.timesteps, constant).sum(0).double()
        np.save(tmp_path / f"{name}.npy", x.double().numpy())
        for python, sim in _peer_simulators():
            cmd = [python, str(script), "run", "--graph", str(path), "--inputs", str(tmp_path / f"{name}.npy"),
                   "--timesteps", str(policy.timesteps), "--simulator", sim, "--dt", str(DT)]
            res = json.loads(subprocess.run(cmd + (["--constant"] if constant else []), capture_output=True, text=True,
                                            check=True).stdout.strip().splitlines()[-1])
            if "error" in res:  # snnTorch 1.0.0 refuses IF nodes with r != 1
                assert sim == "snntorch" and name == "tan" and "r != 1" in res["error"]
                continue
            torch.testing.assert_close(torch.tensor(res["sums"], dtype=torch.float64), expected, atol=1e-4, rtol=1e-5)
            ran += 1
    assert ran > 0


@pytest.mark.skipif(not any(sim == "snntorch" for _, sim in _peer_simulators()),
                    reason="snnTorch not importable (set SPIKEVERSE_NIR_PEER_PYTHON)")
def test_a_fresh_snntorch_export_loads_and_reproduces_snntorch(tmp_path):
    """snnTorch exports its network now (benchmarks/peer_nir.py fixture) and spikeverse's loader
    gives snnTorch's own spike counts."""
    import subprocess

    python = next(p for p, sim in _peer_simulators() if sim == "snntorch")
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "peer_nir.py"
    subprocess.run([python, str(script), "fixture", str(tmp_path)], check=True, capture_output=True)
    expected = json.loads((tmp_path / "snntorch_leaky.json").read_text())
    policy = load(tmp_path / "snntorch_leaky.nir", timesteps=expected["timesteps"])
    assert policy.q_values(torch.tensor(expected["inputs"])).tolist() == expected["spike_counts"]
