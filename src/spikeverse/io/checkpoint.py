"""Checkpoints: one safetensors file holding tensors and a JSON metadata block.

A checkpoint is a single file, so it is written atomically: the bytes go to a temporary file in
the same folder, are fsync'ed, and ``os.replace`` puts them in place (then the folder is
fsync'ed). A process killed at any moment leaves either the previous checkpoint or the new one,
never a mix. No pickle is involved anywhere: tensors are safetensors, the rest is JSON.

The metadata's ``kind`` names what a checkpoint holds: ``dqn`` (an ANN Q-network), ``dsqn`` (a
directly trained spiking Q-network), ``snn`` (a DQN converted to a spiking network),
``mountaincar_snn`` (the GA's Mountain Car network), ``cartpole_snn`` (the CartPole network of ES
and R-STDP), ``tabular``, ``mnist`` (a spiking MNIST classifier's run: the LIF network or the
ReLU network it converts, and Adam's state). Kinds renamed since they were first written are in ``LEGACY_KINDS``;
reading a checkpoint gives today's name. (A DSQN of before it had a kind of its own was saved as
``dqn``; ``rl.checkpoint`` tells it by its network spec.)
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from spikeverse.errors import SpikeverseError

FORMAT = "spikeverse-checkpoint"
VERSION = 1
_META_KEY = "spikeverse"
# old kind -> today's (issue 12): "evo" held the GA's Mountain Car network
LEGACY_KINDS = {"evo": "mountaincar_snn"}


def canonical_kind(kind: Any) -> Any:
    """Today's name of a checkpoint kind (``LEGACY_KINDS``); other values unchanged."""
    return LEGACY_KINDS.get(kind, kind) if isinstance(kind, str) else kind


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename + fsync of the folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp"  # one writer per file; a stale one is overwritten
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def save_checkpoint(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Save ``tensors`` and JSON-serialisable ``meta`` to one safetensors file, atomically."""
    flat = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    header = {"format": FORMAT, "version": VERSION, **meta, "sha256": _payload_digest(st_save(flat))}
    atomic_write_bytes(path, st_save(flat, metadata={_META_KEY: json.dumps(header)}))


def _payload_digest(data: bytes) -> str:
    """SHA-256 of the tensor bytes of a safetensors file (everything after its header), so that
    flipped bits in the weights are caught, not only a broken header or a truncated file."""
    return hashlib.sha256(memoryview(data)[8 + _header_length(data[:8], len(data)):]).hexdigest()


def _resolve(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.safetensors"
    if not path.is_file():
        raise SpikeverseError(f"no checkpoint at {path}")
    return path


def _validated_meta(path: Path, meta_raw: Any, kind: str | tuple[str, ...] | None) -> dict[str, Any]:
    """The spikeverse metadata of a safetensors header (its kind in today's name), or a one-line
    error; ``kind``: the kind (or kinds) expected, old names accepted."""
    if not isinstance(meta_raw, dict) or not isinstance(meta_raw.get(_META_KEY), str):
        raise SpikeverseError(f"{path} is a safetensors file but not a spikeverse checkpoint")
    try:
        meta = json.loads(meta_raw[_META_KEY])
    except (json.JSONDecodeError, RecursionError):
        raise SpikeverseError(f"{path} has corrupted spikeverse metadata") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise SpikeverseError(f"{path} is not a spikeverse checkpoint")
    version = meta.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise SpikeverseError(f"{path} has corrupted spikeverse metadata (format version {version!r})")
    if version > VERSION:
        raise SpikeverseError(f"{path} was written by a newer spikeverse (format version {version})")
    if "kind" in meta:
        meta["kind"] = canonical_kind(meta["kind"])
    wanted = [kind] if isinstance(kind, str) else list(kind or ())
    if wanted and meta.get("kind") not in {canonical_kind(k) for k in wanted}:
        expected = " or ".join(f"'{canonical_kind(k)}'" for k in wanted)
        raise SpikeverseError(f"{path} holds a '{meta.get('kind')}' checkpoint, expected {expected}")
    return meta


def _unreadable(path: Path, e: Exception) -> SpikeverseError:
    reason = (str(e).splitlines() or [type(e).__name__])[0][:200]
    return SpikeverseError(f"{path} is not a readable checkpoint (truncated or corrupted): {reason}")


def read_checkpoint_meta(path: str | os.PathLike, kind: str | tuple[str, ...] | None = None) -> dict[str, Any]:
    """The metadata of a checkpoint, reading only its header (to dispatch on ``kind`` cheaply).
    The tensors are checked by :func:`load_checkpoint`."""
    path = _resolve(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            n = _header_length(head, size)
            meta_raw = _read_metadata(head + f.read(n))
    except OSError as e:
        raise SpikeverseError(f"cannot read {path}: {e.strerror or e}") from None
    except _DECODE_ERRORS as e:
        raise _unreadable(path, e) from None
    return _validated_meta(path, meta_raw, kind)


def load_checkpoint(path: str | os.PathLike, kind: str | tuple[str, ...] | None = None
                    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load a checkpoint written by :func:`save_checkpoint` (expecting ``kind``: one or a tuple of
    kinds, None for any; the metadata's kind in today's name, ``LEGACY_KINDS``).

    Raises :class:`SpikeverseError` (one line) for a missing, truncated, corrupted or foreign
    file, a checkpoint of another ``kind``, or tensors holding NaN/inf.
    """
    path = _resolve(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SpikeverseError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        _header_length(data[:8], len(data))  # before safetensors, which would allocate a bogus length
        meta_raw = _read_metadata(data)
        tensors = st_load(data)
    except (SafetensorError, *_DECODE_ERRORS) as e:
        raise _unreadable(path, e) from None
    meta = _validated_meta(path, meta_raw, kind)
    if "sha256" in meta and meta["sha256"] != _payload_digest(data):  # files of before the digest have none
        raise SpikeverseError(f"{path} is corrupted (its tensor bytes do not match the checksum it was saved with)")
    for name, t in tensors.items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise SpikeverseError(f"{path}: tensor '{name}' contains NaN or infinite values")
    return tensors, meta


# every way the bytes of a truncated, corrupted or foreign file can fail to decode
_DECODE_ERRORS = (ValueError, TypeError, KeyError, OverflowError, MemoryError, RecursionError, UnicodeDecodeError)


def _header_length(head: bytes, size: int) -> int:
    """The JSON header length of a safetensors file of ``size`` bytes (its first 8 bytes, little endian)."""
    if len(head) < 8:
        raise ValueError("file too short")
    n = int.from_bytes(head[:8], "little")
    if n <= 0 or 8 + n > size:
        raise ValueError("header length out of range")
    return n


def _read_metadata(data: bytes) -> Any:
    """The ``__metadata__`` block of a safetensors header (None when it has none)."""
    n = _header_length(data[:8], len(data))
    header = json.loads(data[8 : 8 + n].decode("utf-8"))
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    return header.get("__metadata__")


def prefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in tensors.items()}


def unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    p = prefix + "."
    return {k[len(p):]: v for k, v in tensors.items() if k.startswith(p)}


def optimizer_to_flat(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict into tensors (per-parameter state) and JSON (param groups)."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for key, val in st.items():
            if torch.is_tensor(val):
                tensors[f"{idx}.{key}"] = val
            else:
                scalars[f"{idx}.{key}"] = val
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_flat(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, val in list(tensors.items()) + list(meta.get("scalars", {}).items()):
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = val
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def load_module_state(module: torch.nn.Module, tensors: dict[str, torch.Tensor], what: str) -> None:
    """``load_state_dict`` with a one-line error on missing/unexpected keys or shape mismatch."""
    own = module.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    if missing or unexpected:
        raise SpikeverseError(
            f"{what}: architecture mismatch (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    for k, v in tensors.items():
        if own[k].shape != v.shape:
            raise SpikeverseError(
                f"{what}: architecture mismatch at '{k}': checkpoint {tuple(v.shape)} vs network {tuple(own[k].shape)}"
            )
    module.load_state_dict(tensors)
