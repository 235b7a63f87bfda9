"""NIR (the Neuromorphic Intermediate Representation, package ``nir`` 1.0) graphs of spiking agents.

- ``nodes``: NIR nodes of spikeverse's layers and neurons, chosen so that forward Euler at the
  step ``DT`` reproduces spikeverse's discrete steps (the neurons' semantics NIR lacks in node
  metadata);
- ``info``: the graph metadata (input encoding, T, dt, readout, env id, what NIR cannot express);
- ``files``: .nir files written atomically and read back with one-line errors;
- ``simulate``: a feed-forward NIR graph as a window simulator (NIR's semantics, or spikeverse's);
- ``policy``: a graph as a Policy, and :func:`load` (``spikeverse evaluate agent.nir``).

The agents' exporters live with the agents (``convert.nir``: converted SNNs and DSQNs;
``models.nir``: the evolved and R-STDP task networks); ``agents.export_nir`` picks one by kind.
"""

from spikeverse.io.nir.files import SUFFIX, check_out_path, read_graph, write_graph
from spikeverse.io.nir.info import AgentInfo
from spikeverse.io.nir.nodes import DT
from spikeverse.io.nir.policy import NIRPolicy, load, policy_from_graph
from spikeverse.io.nir.simulate import SEMANTICS, SUPPORTED, GraphNetwork

__all__ = ["AgentInfo", "DT", "GraphNetwork", "NIRPolicy", "SEMANTICS", "SUPPORTED", "SUFFIX", "check_out_path", "load",
           "policy_from_graph", "read_graph", "write_graph"]
