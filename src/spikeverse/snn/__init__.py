"""The spiking core (SPEC R-SNN-*): functional step functions with explicit state and thin
``nn.Module`` wrappers; encoders; surrogate gradients; whole-window simulation with monitors;
plasticity (STDP, R-STDP). Every module runs batched on CPU and CUDA, float32 and float64.

Conventions shared by all modules
- A spike is emitted when the membrane reaches the threshold: s = H(v - v_th) with H(x) = 1 for
  x >= 0, else 0 (seed 001 eq. 2).
- A *spike function* is any callable x -> spikes; ``spikeverse.snn.surrogates`` provides ones
  whose forward is exactly H and whose backward is a surrogate derivative. Neurons default to
  the plain step (no gradient).
- State lives in tensors owned by the caller or by a module instance; ``reset()`` is per module
  (``reset_net(net)`` resets every stateful module of one network and nothing else).
- Multi-step tensors are time-first: [T, B, ...].
"""
