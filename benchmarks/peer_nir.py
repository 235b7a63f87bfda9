"""Peer for benchmarks/nir_consumers.py: other simulators' NIR importers and exporters. Run it with
the python of a throwaway venv that has snnTorch and/or Norse (CPU torch; spikeverse is not
needed there).

``run``: import a NIR graph (``--graph``) with ``--simulator``'s own importer and run it on the
inputs of every step (``--inputs``, a .npy array [T, B, ...], or [B, ...] the same at every step
with ``--constant``) for ``--timesteps`` steps, the whole batch at once or, with ``--unbatched``,
one observation at a time without a batch dimension (both importers map NIR's Flatten, whose
dims exclude the batch, to ``torch.nn.Flatten(start_dim, end_dim)`` on the tensor as given, so a
batch is flattened with the rest); prints one JSON line {"simulator", "sums": the
Output's signal summed over the steps [B, A], "notes": the importer's warnings}, or
{"simulator", "error"} when the importer refuses the graph.

``fixture DIR``: a small snnTorch network (Linear, Leaky with reset to zero, Linear, Leaky)
exported by snnTorch's own ``export_to_nir`` to DIR/snntorch_leaky.nir, and snnTorch's spike
counts on fixed inputs in DIR/snntorch_leaky.json (``tests/test_nir.py`` reads both: spikeverse's
loader on another tool's graph, without snnTorch installed).

- snnTorch (``snntorch.import_nir.import_from_nir``): its modules keep their state
  (``init_hidden``); every neuron's membrane is set to 0 before each window.
- Norse (``norse.torch.from_nir(graph, dt=--dt)``): a stateful executor, called with state None
  at the first step of each window.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import sys

import nir
import numpy as np
import torch


def run_snntorch(graph, x: torch.Tensor, T: int, constant: bool, dt: float, notes: list[str]) -> torch.Tensor:
    import snntorch
    from snntorch.import_nir import import_from_nir

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        net = import_from_nir(graph)
    notes += [line for line in buf.getvalue().splitlines() if line.strip()]
    neurons = [m for m in net.modules() if isinstance(m, snntorch.SpikingNeuron)]
    for m in neurons:
        m.reset_mem()
    total = None
    with torch.no_grad():
        for t in range(T):
            y = net(x if constant else x[t])
            y = y[0] if isinstance(y, tuple) else y
            total = y.clone() if total is None else total + y
    return total


def run_norse(graph, x: torch.Tensor, T: int, constant: bool, dt: float, notes: list[str]) -> torch.Tensor:
    import norse.torch as norse

    net = norse.from_nir(graph, dt=dt)
    state, total = None, None
    with torch.no_grad():
        for t in range(T):
            y, state = net(x if constant else x[t], state)
            total = y.clone() if total is None else total + y
    return total


SIMULATORS = {"snntorch": run_snntorch, "norse": run_norse}


def version(name: str) -> str:
    from importlib.metadata import version as v

    return f"{'snnTorch' if name == 'snntorch' else 'Norse'} {v(name)}"


def fixture(folder: str) -> None:
    """snnTorch's export of a small Leaky network and snnTorch's own output on fixed inputs."""
    import snntorch as snn
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(1)
    beta, T = 0.8, 12
    leaky = lambda n: snn.Leaky(beta=beta * torch.ones(n), threshold=torch.ones(n), reset_mechanism="zero",  # noqa: E731
                                init_hidden=True)
    net = torch.nn.Sequential(torch.nn.Linear(3, 6), leaky(6), torch.nn.Linear(6, 2), leaky(2))
    with torch.no_grad():
        net[0].weight.mul_(3.0)
        net[2].weight.mul_(3.0)
        net[2].bias.copy_(torch.tensor([0.3, 0.9]))
    x = torch.rand(8, 3) * 2
    graph = export_to_nir(net, x, ignore_dims=[0])
    nir.write(f"{folder}/snntorch_leaky.nir", graph)
    for m in net.modules():
        if isinstance(m, snn.SpikingNeuron):
            m.reset_mem()
    with torch.no_grad():
        counts = sum(net(x) for _ in range(T))
    from importlib.metadata import version as v

    with open(f"{folder}/snntorch_leaky.json", "w") as f:
        json.dump({"made_by": f"snnTorch {v('snntorch')} export_to_nir (benchmarks/peer_nir.py fixture)",
                   "beta": beta, "timesteps": T, "inputs": x.tolist(), "spike_counts": counts.tolist()}, f, indent=1)
        f.write("\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("--graph", required=True)
    run.add_argument("--inputs", required=True)
    run.add_argument("--timesteps", type=int, required=True)
    run.add_argument("--constant", action="store_true")
    run.add_argument("--simulator", choices=sorted(SIMULATORS), required=True)
    run.add_argument("--dt", type=float, default=1e-4)
    run.add_argument("--unbatched", action="store_true")
    fix = sub.add_parser("fixture")
    fix.add_argument("folder")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.command == "fixture":
        fixture(args.folder)
        return
    notes: list[str] = []
    handler = logging.StreamHandler(log := io.StringIO())
    logging.getLogger().addHandler(handler)
    out = {"simulator": version(args.simulator)}
    try:
        graph = nir.read(args.graph)
        x = torch.as_tensor(np.load(args.inputs)).float()
        run = SIMULATORS[args.simulator]
        if args.unbatched:  # sample b: x[b] every step, or x[:, b] at step t
            total = torch.stack([run(graph, x[b] if args.constant else x[:, b], args.timesteps, args.constant,
                                     args.dt, notes) for b in range(x.shape[0 if args.constant else 1])])
        else:
            total = run(graph, x, args.timesteps, args.constant, args.dt, notes)
        out["sums"] = total.double().tolist()
    except Exception as e:  # the importer refusing the graph is a result, reported as such
        out["error"] = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:300]}"
    notes += log.getvalue().splitlines()
    out["notes"] = sorted({line.strip()[:200] for line in notes if "warn" in line.lower() or "diverge" in line})
    print(json.dumps(out))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
