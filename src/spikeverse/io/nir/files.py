"""NIR files: writing a graph atomically and reading one back, with one-line errors.

A ``.nir`` file is NIR's HDF5 serialisation (``nir.write`` / ``nir.read``). It is written to
memory first and put in place by ``io.checkpoint.atomic_write_bytes`` (temp file, fsync,
``os.replace``), so a killed export leaves the previous file or the new one, never half of one.
A graph with a NaN or infinite parameter is refused both ways, naming the node and parameter.
"""

from __future__ import annotations

import io
from pathlib import Path

import h5py
import nir
import numpy as np

from spikeverse.errors import SpikeverseError
from spikeverse.io.checkpoint import atomic_write_bytes

SUFFIX = ".nir"


def check_finite(graph: nir.NIRGraph, where: str) -> None:
    """Refuse a graph with a NaN or infinite parameter (one line naming node and parameter)."""
    for name, node in graph.nodes.items():
        if isinstance(node, nir.NIRGraph):
            check_finite(node, f"{where}: subgraph '{name}'")
            continue
        for key, value in vars(node).items():
            if key in ("input_type", "output_type", "metadata"):
                continue
            a = np.asarray(value) if not isinstance(value, str) else None
            if a is not None and a.dtype.kind in "fc" and not np.isfinite(a).all():
                raise SpikeverseError(f"{where}: node '{name}' ({type(node).__name__}) has NaN or infinite {key}")


def check_out_path(path: str | Path) -> Path:
    """A path a graph may be written to: it ends in .nir and is not a folder."""
    path = Path(path)
    if path.suffix != SUFFIX:
        raise SpikeverseError(f"a NIR file's name ends in {SUFFIX}, got {path}")
    if path.is_dir():
        raise SpikeverseError(f"{path} is a folder; name the .nir file to write")
    return path


def write_graph(path: str | Path, graph: nir.NIRGraph) -> Path:
    """Write ``graph`` to ``path`` (must end in .nir) atomically; returns the path."""
    path = check_out_path(path)
    check_finite(graph, str(path))
    buf = io.BytesIO()
    nir.write(buf, graph)
    atomic_write_bytes(path, buf.getvalue())
    return path


def read_graph(path: str | Path) -> nir.NIRGraph:
    """The graph in a .nir file; a missing file, a file that is not HDF5 or not a NIR graph, a node
    type ``nir`` does not know, or a NaN parameter is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise SpikeverseError(f"no NIR file at {path}")
    try:
        is_hdf5 = h5py.is_hdf5(path)
    except OSError:
        is_hdf5 = False
    if not is_hdf5:
        raise SpikeverseError(f"{path} is not a NIR file (not HDF5)")
    try:
        with h5py.File(path, "r") as f:
            if "node" not in f:
                raise SpikeverseError(f"{path} is an HDF5 file but not a NIR graph (no 'node' group)")
        graph = nir.read(path)
    except SpikeverseError:
        raise
    except Exception as e:  # nir's ValueError (unknown type), KeyError/AssertionError (malformed), OSError
        msg = (str(e).splitlines() or [type(e).__name__])[0][:200]
        raise SpikeverseError(f"{path} is not a readable NIR graph: {type(e).__name__}: {msg}") from None
    if not isinstance(graph, nir.NIRGraph):
        raise SpikeverseError(f"{path} holds a single {type(graph).__name__} node, not a NIR graph")
    check_finite(graph, str(path))
    return graph
