"""Checkpoints: one safetensors file holding tensors and a JSON metadata block.

A checkpoint is a single file, so it is written atomically: the bytes go to a temporary file in
the same folder, are fsync'ed, and ``os.replace`` puts them in place (then the folder is
fsync'ed). A process killed at any moment leaves either the previous checkpoint or the new one,
never a mix. No pickle is involved anywhere: tensors are safetensors, the rest is JSON.
"""

from __future__ import annotations

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
    header = {"format": FORMAT, "version": VERSION, **meta}
    atomic_write_bytes(path, st_save(flat, metadata={_META_KEY: json.dumps(header)}))


def _resolve(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.safetensors"
    if not path.is_file():
        raise SpikeverseError(f"no checkpoint at {path}")
    return path


def _validated_meta(path: Path, meta_raw: dict[str, str] | None, kind: str | None) -> dict[str, Any]:
    """The spikeverse metadata of a safetensors header, or a one-line error."""
    if not meta_raw or _META_KEY not in meta_raw:
        raise SpikeverseError(f"{path} is a safetensors file but not a spikeverse checkpoint")
    try:
        meta = json.loads(meta_raw[_META_KEY])
    except json.JSONDecodeError:
        raise SpikeverseError(f"{path} has corrupted spikeverse metadata") from None
    if meta.get("format") != FORMAT:
        raise SpikeverseError(f"{path} is not a spikeverse checkpoint")
    if meta.get("version", 0) > VERSION:
        raise SpikeverseError(f"{path} was written by a newer spikeverse (format version {meta['version']})")
    if kind is not None and meta.get("kind") != kind:
        raise SpikeverseError(f"{path} holds a '{meta.get('kind')}' checkpoint, expected '{kind}'")
    return meta


def _unreadable(path: Path, e: Exception) -> SpikeverseError:
    return SpikeverseError(f"{path} is not a readable checkpoint (truncated or corrupted): {str(e).splitlines()[0]}")


def read_checkpoint_meta(path: str | os.PathLike, kind: str | None = None) -> dict[str, Any]:
    """The metadata of a checkpoint, reading only its header (to dispatch on ``kind`` cheaply).
    The tensors are checked by :func:`load_checkpoint`."""
    path = _resolve(path)
    with open(path, "rb") as f:
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        try:
            return _validated_meta(path, _read_metadata(head + f.read(max(n, 0))), kind)
        except (ValueError, json.JSONDecodeError, UnicodeDecodeError) as e:
            raise _unreadable(path, e) from None


def load_checkpoint(path: str | os.PathLike, kind: str | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load a checkpoint written by :func:`save_checkpoint`.

    Raises :class:`SpikeverseError` (one line) for a missing, truncated, corrupted or foreign
    file, a checkpoint of another ``kind``, or tensors holding NaN/inf.
    """
    path = _resolve(path)
    data = path.read_bytes()
    try:
        tensors = st_load(data)
        meta_raw = _read_metadata(data)
    except (SafetensorError, ValueError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise _unreadable(path, e) from None
    meta = _validated_meta(path, meta_raw, kind)
    for name, t in tensors.items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise SpikeverseError(f"{path}: tensor '{name}' contains NaN or infinite values")
    return tensors, meta


def _read_metadata(data: bytes) -> dict[str, str] | None:
    """The ``__metadata__`` block of a safetensors header."""
    if len(data) < 8:
        raise ValueError("file too short")
    n = int.from_bytes(data[:8], "little")
    if n <= 0 or 8 + n > len(data):
        raise ValueError("header length out of range")
    return json.loads(data[8 : 8 + n].decode("utf-8")).get("__metadata__")


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
