"""A trained Q-network as a flat list of layers that conversion can walk (SPEC R-CONV).

Every source network becomes a :class:`FlatQNetwork`: an ``nn.Sequential`` of Conv2d / Linear /
ReLU / Flatten that ends in one output Linear with one unit per action, taking the *raw*
observation (the network's ``obs_scale`` is folded into the first layer: W_1 s x = (s W_1) x,
so lambda_0 = 1 in eq. 16 of seed 001). Sources:

- a spikeverse :class:`~spikeverse.rl.networks.QNetwork` (MLP, MinAtar CNN, Nature CNN; plain or
  dueling head; a noisy head in eval mode, whose layers then use their mean weights);
- any module made of those layers (nested ``nn.Sequential`` are flattened);
- a plain PyTorch state dict of a Sequential-style Q-network (SB3 ``policy.pth``, CleanRL
  ``QNetwork``, spikeverse), read with ``torch.load(weights_only=True)``.

The dueling combination Q = V + A - mean_a A (R-RL-DUEL) is linear in the head's input h, so it
folds into one output Linear: W = W_A - mean_a W_A + W_V (W_V broadcast over actions),
b = b_A - mean_a b_A + b_V. A state dict carries no strides: convolution layouts are inferred
by matching the kernel sizes to the Nature CNN (8x8/4, 4x4/2, 3x3/1) or the MinAtar CNN (3x3/1).
Anything else (noisy layers in training mode, a C51 head, pooling, batch norm, ...) raises
:class:`SpikeverseError` naming the layer.
"""

from __future__ import annotations

import io
import math
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from spikeverse.envs import make, obs_scale_for
from spikeverse.errors import SpikeverseError
from spikeverse.rl.networks import QNetwork
from spikeverse.rl.noisy import NoisyLinear

# layers that are the identity at evaluation time and are simply dropped
_IDENTITY = (nn.Identity, nn.Dropout)
_WHY = {
    "MaxPool2d": "max-pooling has no integrate-and-fire counterpart in this method",
    "AvgPool2d": "pooling layers are not supported by this method",
    "AdaptiveAvgPool2d": "pooling layers are not supported by this method",
    "AdaptiveMaxPool2d": "max-pooling has no integrate-and-fire counterpart in this method",
    "BatchNorm1d": "batch norm is not supported (fold it into the previous layer first)",
    "BatchNorm2d": "batch norm is not supported (fold it into the previous layer first)",
    "Softmax": "a softmax output is not a Q-value head",
    "LogSoftmax": "a softmax output is not a Q-value head",
}
# (kernel sizes of the convolutions) -> strides, the layouts a state dict is matched against
CONV_LAYOUTS = {
    (8, 4, 3): ((4, 2, 1), "Nature CNN (8x8/4, 4x4/2, 3x3/1)"),
    (3,): ((1,), "MinAtar CNN (3x3/1)"),
}


class FlatQNetwork(nn.Module):
    """A Q-network as one ``nn.Sequential`` of Conv2d/Linear/ReLU/Flatten ending in the output
    Linear (no ReLU after it). Takes raw observations (obs_scale already folded in). A Policy."""

    def __init__(self, layers: Sequence[nn.Module], input_shape: Sequence[int]):
        super().__init__()
        self.layers = nn.Sequential(*layers)
        self.input_shape = tuple(int(s) for s in input_shape)
        check_layers(self.layers)
        self.num_actions = synaptic_layers(self.layers)[-1].out_features

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.layers(obs.to(self.device, torch.float32))

    def q_values(self, obs: torch.Tensor) -> torch.Tensor:
        return self(obs)

    def layout(self) -> list[dict[str, Any]]:
        """The architecture as JSON (see :func:`layers_from_layout`)."""
        return layout_of(self.layers)


def synaptic_layers(layers: Sequence[nn.Module]) -> list[nn.Module]:
    """The Conv2d/Linear layers, in order (layer l = 1..L of seed 001)."""
    return [m for m in layers if isinstance(m, (nn.Conv2d, nn.Linear))]


def check_layers(layers: Sequence[nn.Module]) -> None:
    """A convertible stack: synaptic layers each followed by a ReLU (Flatten may sit between),
    except the last, which is a Linear with no ReLU after it."""
    mods = list(layers)
    syn = [i for i, m in enumerate(mods) if isinstance(m, (nn.Conv2d, nn.Linear))]
    if not syn:
        raise SpikeverseError("the network has no Linear or Conv2d layer")
    for i, m in enumerate(mods):
        if not isinstance(m, (nn.Conv2d, nn.Linear, nn.ReLU, nn.Flatten)):
            raise SpikeverseError(f"cannot convert layer {i} ({type(m).__name__})")
        if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is None:
            raise SpikeverseError(f"layer {i} ({type(m).__name__}) has no bias; add a zero bias first")
        if isinstance(m, nn.Conv2d) and (m.groups != 1 or m.padding_mode != "zeros" or isinstance(m.padding, str)):
            raise SpikeverseError(f"layer {i} (Conv2d): only groups=1 and numeric zero padding are supported")
    last = syn[-1]
    if not isinstance(mods[last], nn.Linear):
        raise SpikeverseError(f"the output layer {last} must be a Linear, not {type(mods[last]).__name__}")
    if len(mods) > last + 1:
        raise SpikeverseError(f"the output layer {last} must be the last layer (Q-values, no ReLU after it)")
    for a, b in zip(syn, syn[1:]):
        between = mods[a + 1:b]
        if sum(isinstance(m, nn.ReLU) for m in between) != 1:
            raise SpikeverseError(f"layers {a} and {b} need exactly one ReLU between them, found "
                                  f"{[type(m).__name__ for m in between]}")
    if any(isinstance(m, nn.ReLU) for m in mods[:syn[0]]):
        raise SpikeverseError("a ReLU before the first synaptic layer cannot be converted")


def layout_of(layers: Sequence[nn.Module]) -> list[dict[str, Any]]:
    """[{type: conv2d|linear|relu|flatten, ...shapes}] for each layer."""
    out = []
    for m in layers:
        if isinstance(m, nn.Conv2d):
            out.append(dict(type="conv2d", in_channels=m.in_channels, out_channels=m.out_channels,
                            kernel_size=list(m.kernel_size), stride=list(m.stride), padding=list(m.padding)))
        elif isinstance(m, nn.Linear):
            out.append(dict(type="linear", in_features=m.in_features, out_features=m.out_features))
        elif isinstance(m, nn.ReLU):
            out.append(dict(type="relu"))
        elif isinstance(m, nn.Flatten):
            out.append(dict(type="flatten"))
        else:
            raise SpikeverseError(f"cannot describe layer {type(m).__name__}")
    return out


def layers_from_layout(layout: Sequence[Mapping[str, Any]]) -> list[nn.Module]:
    """Modules (uninitialised weights) for a layout written by :func:`layout_of`."""
    mods: list[nn.Module] = []
    for d in layout:
        t = d.get("type")
        if t == "conv2d":
            mods.append(nn.Conv2d(d["in_channels"], d["out_channels"], tuple(d["kernel_size"]),
                                  tuple(d["stride"]), tuple(d["padding"])))
        elif t == "linear":
            mods.append(nn.Linear(d["in_features"], d["out_features"]))
        elif t == "relu":
            mods.append(nn.ReLU())
        elif t == "flatten":
            mods.append(nn.Flatten())
        else:
            raise SpikeverseError(f"unknown layer type {t!r} in a saved layout")
    return mods


def fold_dueling(value: nn.Linear, advantage: nn.Linear) -> nn.Linear:
    """One Linear computing V + A - mean_a A (R-RL-DUEL):
    W = W_A - mean_a W_A + W_V, b = b_A - mean_a b_A + b_V."""
    w_a, b_a = advantage.weight.detach(), advantage.bias.detach()
    w_v, b_v = value.weight.detach(), value.bias.detach()
    if w_v.shape[0] != 1:
        raise SpikeverseError(f"the dueling value layer has {w_v.shape[0]} outputs, expected 1")
    out = nn.Linear(w_a.shape[1], w_a.shape[0])
    with torch.no_grad():
        out.weight.copy_(w_a - w_a.mean(0, keepdim=True) + w_v)
        out.bias.copy_(b_a - b_a.mean() + b_v)
    return out


def _fold_input_scale(layers: list[nn.Module], scale: float) -> None:
    """W_1 <- s W_1, so the stack takes raw observations (x s is the network's own input)."""
    if scale == 1.0:
        return
    first = synaptic_layers(layers)[0]
    with torch.no_grad():
        first.weight.mul_(scale)


def plain_linear(m: nn.Module, name: str) -> nn.Linear:
    """A plain Linear with the (mean) weights of ``m``; noisy layers must be in eval mode."""
    if isinstance(m, NoisyLinear):
        if m.training:
            raise SpikeverseError(f"cannot convert the noisy layer '{name}' in training mode (its weights are "
                                  "re-drawn every step); call .eval() to use its mean weights")
        w, b = m.weight_mu, m.bias_mu
    elif isinstance(m, nn.Linear):
        w, b = m.weight, m.bias if m.bias is not None else torch.zeros(m.out_features)
    else:
        raise SpikeverseError(f"cannot convert layer '{name}' ({type(m).__name__})")
    out = nn.Linear(w.shape[1], w.shape[0])
    with torch.no_grad():
        out.weight.copy_(w.detach())
        out.bias.copy_(b.detach())
    return out


def _leaves(module: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    """Leaf modules in registration order with their dotted names."""
    kids = list(module.named_children())
    if not kids:
        return [(prefix or type(module).__name__, module)]
    if any(p is not None for p in module._parameters.values()):
        raise SpikeverseError(f"cannot convert '{prefix or type(module).__name__}' ({type(module).__name__}): it "
                              "holds parameters of its own besides its layers")
    out = []
    for name, child in kids:
        out += _leaves(child, f"{prefix}.{name}" if prefix else name)
    return out


def _copy_plain(name: str, m: nn.Module) -> nn.Module | None:
    """A fresh copy of a supported leaf (None for an identity), or an error naming it."""
    if isinstance(m, _IDENTITY):
        return None
    if isinstance(m, (nn.Linear, NoisyLinear)):
        return plain_linear(m, name)
    if isinstance(m, nn.Conv2d):
        c = nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation,
                      m.groups, True, m.padding_mode)
        with torch.no_grad():
            c.weight.copy_(m.weight.detach())
            c.bias.copy_(m.bias.detach() if m.bias is not None else torch.zeros(m.out_channels))
        if m.dilation != (1, 1):
            raise SpikeverseError(f"cannot convert layer '{name}' (Conv2d with dilation {m.dilation})")
        return c
    if isinstance(m, nn.ReLU):
        return nn.ReLU()
    if isinstance(m, nn.Flatten):
        if m.start_dim != 1 or m.end_dim != -1:
            raise SpikeverseError(f"cannot convert layer '{name}' (Flatten over dims {m.start_dim}..{m.end_dim})")
        return nn.Flatten()
    kind = type(m).__name__
    why = _WHY.get(kind, "only Conv2d, Linear, ReLU and Flatten layers can be converted")
    raise SpikeverseError(f"cannot convert layer '{name}' ({kind}): {why}")


def from_module(net: nn.Module, input_shape: Sequence[int] | None = None, obs_scale: float | None = None) -> FlatQNetwork:
    """A :class:`FlatQNetwork` computing the same Q-values as ``net``.

    ``net`` is a spikeverse QNetwork (input shape and obs_scale from its spec) or any module
    whose leaves, in registration order, are a convertible stack (then ``input_shape`` is
    needed; ``obs_scale`` is what the network's forward multiplies observations by, default 1).
    """
    if isinstance(net, QNetwork):
        spec = net.spec
        if spec.atoms > 1:
            raise SpikeverseError(f"cannot convert the C51 head 'advantage' ({spec.atoms} atoms per action with "
                                  "a softmax over atoms): it is not a linear map to Q-values")
        layers = [c for n, m in _leaves(net.torso, "torso") if (c := _copy_plain(n, m)) is not None]
        adv = plain_linear(net.advantage, "advantage")
        head = fold_dueling(plain_linear(net.value, "value"), adv) if net.value is not None else adv
        layers.append(head)
        scale = spec.obs_scale if obs_scale is None else obs_scale
        shape = spec.obs_shape if input_shape is None else input_shape
    else:
        if input_shape is None:
            raise SpikeverseError("input_shape is needed to convert a plain module")
        layers = [c for n, m in _leaves(net) if (c := _copy_plain(n, m)) is not None]
        scale, shape = (1.0 if obs_scale is None else obs_scale), input_shape
    _fold_input_scale(layers, float(scale))
    flat = FlatQNetwork(layers, shape)
    _check_shapes(flat)
    return flat.to(_device_of(net)).eval()


def _device_of(net: nn.Module) -> torch.device:
    p = next(net.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _check_shapes(flat: FlatQNetwork) -> None:
    """Run a zero observation through the stack; a size mismatch is a user error."""
    try:
        with torch.no_grad():
            flat.layers(torch.zeros(1, *flat.input_shape))
    except RuntimeError as e:
        raise SpikeverseError(f"the layers do not fit observations of shape {flat.input_shape}: "
                              f"{str(e).splitlines()[0]}") from None


# ---------------------------------------------------------------------------- state dicts


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``torch.save``d state dict (``weights_only=True``: no code is unpickled).

    Also reads an SB3 model zip (its ``policy.pth``) and a dict nesting the state dict under
    ``state_dict`` or ``model``.
    """
    path = Path(path)
    if not path.is_file():
        raise SpikeverseError(f"no state dict file at {path}")
    src: Any = str(path)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
                if "policy.pth" in names:  # a Stable-Baselines3 model zip
                    src = io.BytesIO(z.read("policy.pth"))
        obj = torch.load(src, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle.UnpicklingError, RuntimeError, EOFError, ...
        raise SpikeverseError(f"{path} is not a loadable weights-only state dict: {(str(e).splitlines() or [type(e).__name__])[0][:200]}") from None
    for key in ("state_dict", "model", "q_network"):
        if isinstance(obj, Mapping) and not _is_tensor_dict(obj) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping) or not obj:
        raise SpikeverseError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    sd = {k: v for k, v in obj.items() if torch.is_tensor(v)}
    if not sd:
        raise SpikeverseError(f"{path} holds no tensors")
    for name, t in sd.items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise SpikeverseError(f"{path}: tensor '{name}' contains NaN or infinite values")
    return sd


def _is_tensor_dict(d: Mapping) -> bool:
    return all(torch.is_tensor(v) for v in d.values())


def _module_groups(sd: Mapping[str, torch.Tensor]) -> "OrderedDict[str, dict[str, torch.Tensor]]":
    groups: OrderedDict[str, dict[str, torch.Tensor]] = OrderedDict()
    for key, t in sd.items():
        mod, _, param = key.rpartition(".")
        groups.setdefault(mod, {})[param] = t
    return groups


def _select_online(groups: "OrderedDict[str, dict]") -> "OrderedDict[str, dict]":
    """Drop target networks (SB3 ``q_net_target``, CleanRL ``target_network``, ...)."""
    keep = OrderedDict((m, p) for m, p in groups.items()
                       if not any("target" in part.lower() for part in m.split(".")))
    return keep or groups


def from_state_dict(sd: Mapping[str, torch.Tensor], input_shape: Sequence[int], num_actions: int | None = None,
                    obs_scale: float = 1.0) -> FlatQNetwork:
    """A :class:`FlatQNetwork` from a Sequential-style Q-network's state dict.

    Parameterised modules are taken in the dict's order (the order ``state_dict()`` writes),
    target networks dropped; 4-d weights are Conv2d, 2-d weights Linear. A ReLU follows every
    layer but the last, a Flatten the last convolution (or comes first for a multi-dimensional
    observation and no convolution). Modules named ``value`` and ``advantage`` form a dueling
    head and are folded. Strides come from :data:`CONV_LAYOUTS`.
    """
    groups = _select_online(_module_groups(sd))
    for mod, params in groups.items():
        if "weight_mu" in params or "weight_sigma" in params:
            raise SpikeverseError(f"cannot convert the noisy layer '{mod}' from a state dict (no train/eval mode is "
                                  "saved); convert the spikeverse run directory, whose eval mode uses the mean weights")
        if "running_mean" in params:
            raise SpikeverseError(f"cannot convert layer '{mod}' (batch norm): fold it into the previous layer first")
        if mod.split(".")[-1] == "support" or "support" in params:
            raise SpikeverseError(f"cannot convert the distributional (C51) head '{mod or 'support'}': "
                                  "it is not a linear map to Q-values")
        if "weight" not in params:
            names = ", ".join(f"{mod}.{p}" for p in params)
            raise SpikeverseError(f"cannot convert '{names}': not a weight/bias layer")
    names = list(groups)
    value = next((n for n in names if n.split(".")[-1] == "value"), None)
    adv = next((n for n in names if n.split(".")[-1] in ("advantage", "adv")), None)
    head_names = [value, adv] if value is not None and adv is not None else []
    body = [n for n in names if n not in head_names]

    convs = [n for n in body if groups[n]["weight"].dim() == 4]
    for n in body:
        if groups[n]["weight"].dim() not in (2, 4):
            raise SpikeverseError(f"cannot convert layer '{n}' (weight of shape {tuple(groups[n]['weight'].shape)})")
    if convs and any(groups[n]["weight"].dim() == 2 for n in body[:body.index(convs[-1])]):
        raise SpikeverseError("a Linear layer before a convolution cannot be converted")
    strides = _infer_strides([groups[n]["weight"] for n in convs], convs)

    layers: list[nn.Module] = []
    if not convs and len(input_shape) > 1:
        layers.append(nn.Flatten())
    for k, n in enumerate(body):
        w = groups[n]["weight"].detach().float()
        b = groups[n].get("bias")
        b = torch.zeros(w.shape[0]) if b is None else b.detach().float()
        if w.dim() == 4:
            m: nn.Module = nn.Conv2d(w.shape[1], w.shape[0], tuple(w.shape[2:]), strides[convs.index(n)])
        else:
            m = nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            m.weight.copy_(w)
            m.bias.copy_(b)
        if layers and isinstance(layers[-1], (nn.Conv2d, nn.Linear)):
            layers.append(nn.ReLU())
        if isinstance(m, nn.Linear) and layers and any(isinstance(x, nn.Conv2d) for x in layers) \
                and not any(isinstance(x, nn.Flatten) for x in layers):
            layers.append(nn.Flatten())
        layers.append(m)
    if head_names:
        v, a = (_linear_from(groups[x], x) for x in head_names)
        if layers:
            layers.append(nn.ReLU())
        layers.append(fold_dueling(v, a))
    if not layers:
        raise SpikeverseError("the state dict holds no layers")
    _fold_input_scale(layers, float(obs_scale))
    _check_flatten_size(layers, input_shape, convs, strides)
    try:
        flat = FlatQNetwork(layers, input_shape)
    except SpikeverseError as e:
        raise SpikeverseError(f"the state dict is not a Sequential-style Q-network: {e}") from None
    _check_shapes(flat)
    if num_actions is not None and flat.num_actions != num_actions:
        out = head_names[1] if head_names else body[-1]
        raise SpikeverseError(f"the output layer '{out}' has {flat.num_actions} outputs but the environment has "
                              f"{num_actions} actions (a distributional head such as C51 cannot be converted)")
    return flat.eval()


def _linear_from(params: Mapping[str, torch.Tensor], name: str) -> nn.Linear:
    w = params["weight"]
    if w.dim() != 2:
        raise SpikeverseError(f"the dueling layer '{name}' is not a Linear (weight {tuple(w.shape)})")
    m = nn.Linear(w.shape[1], w.shape[0])
    with torch.no_grad():
        m.weight.copy_(w.float())
        m.bias.copy_(params.get("bias", torch.zeros(w.shape[0])).float())
    return m


def _infer_strides(weights: list[torch.Tensor], names: list[str]) -> list[int]:
    """Strides of the convolutions, by matching their square kernels to the known layouts."""
    if not weights:
        return []
    kernels = tuple(int(w.shape[2]) if w.shape[2] == w.shape[3] else -1 for w in weights)
    if kernels in CONV_LAYOUTS:
        return list(CONV_LAYOUTS[kernels][0])
    known = "; ".join(d for _, d in CONV_LAYOUTS.values())
    shapes = ", ".join(f"{n}: {w.shape[2]}x{w.shape[3]}" for n, w in zip(names, weights))
    raise SpikeverseError(f"cannot infer the strides of the convolutions ({shapes}): a state dict has no "
                          f"strides, and only these layouts are recognised: {known}; build the module "
                          "yourself and use spikeverse.convert.from_module")


def _check_flatten_size(layers: list[nn.Module], input_shape: Sequence[int], convs: list[str], strides: list[int]) -> None:
    """The features after the (inferred) convolutions must match the first Linear's inputs."""
    lin = next((m for m in layers if isinstance(m, nn.Linear)), None)
    if lin is None:
        return
    if convs:
        if len(input_shape) != 3:
            raise SpikeverseError(f"convolutions need (C, H, W) observations, got shape {tuple(input_shape)}")
        c, h, w = input_shape
        last = None
        for m in layers:
            if isinstance(m, nn.Conv2d):
                h = (h - m.kernel_size[0]) // m.stride[0] + 1
                w = (w - m.kernel_size[1]) // m.stride[1] + 1
                last = m
        n = last.out_channels * h * w
        if n != lin.in_features:
            layout = " -> ".join(f"{m.kernel_size[0]}x{m.kernel_size[1]}/{m.stride[0]}" for m in layers
                                 if isinstance(m, nn.Conv2d))
            raise SpikeverseError(f"with the inferred layout {layout} the convolutions give {n} features for "
                                  f"observations {tuple(input_shape)}, but the first Linear takes "
                                  f"{lin.in_features}: the strides could not be inferred")
    elif math.prod(input_shape) != lin.in_features:
        raise SpikeverseError(f"the first Linear takes {lin.in_features} inputs, but observations have shape "
                              f"{tuple(input_shape)} ({math.prod(input_shape)} values)")


def env_io(env_id: str) -> tuple[tuple[int, ...], int, float]:
    """(observation shape, number of actions, obs_scale) of an environment: uint8 frames are
    scaled by 1/255 inside the network, as spikeverse, SB3 and CleanRL all do."""
    env = make(env_id)
    try:
        space = env.observation_space
        if not hasattr(env.action_space, "n"):
            raise SpikeverseError(f"{env_id} has no discrete action space")
        if space.shape is None or len(space.shape) == 0:
            raise SpikeverseError(f"{env_id} has discrete observations; conversion needs a Q-network")
        return tuple(space.shape), int(env.action_space.n), obs_scale_for(space)
    finally:
        env.close()
