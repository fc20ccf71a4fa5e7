"""The shipped ONNX models: folder, manifest, checksums, lookup.

Models live in one folder (default: the repository's ``onnx_models/``, i.e. the parent
of the installed ``pympisr`` package for an editable install; override with the
environment variable ``PYMPISR_MODELS``). ``manifest.json`` there lists each model::

    {"format": "pympisr-model-manifest", "version": 1,
     "models": [{"name": "denoise-dncnn-small-2d", "file": "....onnx", "task": "denoise",
                 "dims": 2, "architecture": "DnCNN", "model_name": "dncnn-small",
                 "model_options": {...}, "parameters": 56866, "sha256": "...",
                 "bytes": 229000, "opset": 17, "noise_range": [0.0, 0.35],
                 "golden": {"input": "...", "output": "..."},
                 "training": {...}, "test_metrics": {...}, "pympisr_version": "0.1.0"}]}

A model file is used only after its sha256 matches the manifest
(:func:`verify_model`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import atomic_output
from .errors import PympisrError

__all__ = ["MANIFEST_NAME", "ModelIntegrityError", "ModelNotFoundError", "ResolvedModel", "default_model",
           "find_model", "manifest_entry", "models_dir", "read_manifest", "register_model", "resolve_model",
           "sha256_file", "verify_model", "write_manifest"]

MANIFEST_NAME = "manifest.json"
ENV_VAR = "PYMPISR_MODELS"
_FORMAT = "pympisr-model-manifest"


class ModelIntegrityError(PympisrError, RuntimeError):
    """A model file's sha256 does not match its manifest entry."""


class ModelNotFoundError(PympisrError, LookupError):
    """No model of the requested name, or none for the requested task and dims."""


def models_dir() -> Path:
    """``$PYMPISR_MODELS`` if set, else ``<repository>/onnx_models``."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "onnx_models"


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(directory: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The manifest of ``directory`` (default :func:`models_dir`).

    Raises FileNotFoundError if there is none, ValueError if it is malformed.
    """
    path = Path(directory or models_dir()) / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no model manifest (set {ENV_VAR} to the folder "
                                "holding manifest.json and the .onnx files)")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if manifest.get("format") != _FORMAT or not isinstance(manifest.get("models"), list):
        raise ValueError(f"{path}: not a pympisr model manifest (format {_FORMAT!r} with a "
                         "'models' list expected)")
    for i, entry in enumerate(manifest["models"]):
        missing = {"name", "file", "task", "dims", "sha256"} - set(entry)
        if missing:
            raise ValueError(f"{path}: models[{i}] lacks {sorted(missing)}")
    return manifest


def write_manifest(manifest: dict[str, Any],
                   directory: str | os.PathLike[str] | None = None) -> Path:
    """Write ``manifest`` atomically to ``directory/manifest.json``."""
    path = Path(directory or models_dir()) / MANIFEST_NAME
    with atomic_output(path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    return path


def register_model(entry: dict[str, Any],
                   directory: str | os.PathLike[str] | None = None) -> Path:
    """Add ``entry`` to the manifest (replacing an entry of the same name)."""
    directory = Path(directory or models_dir())
    try:
        manifest = read_manifest(directory)
    except FileNotFoundError:
        manifest = {"format": _FORMAT, "version": 1, "models": []}
    models = [m for m in manifest["models"] if m["name"] != entry["name"]]
    manifest["models"] = [*models, entry]
    return write_manifest(manifest, directory)


def manifest_entry(name: str, export: Any) -> dict[str, Any]:
    """Manifest entry for an exported model (a :class:`pympisr.export.ExportResult`):
    file names, sha256 and size, and the model's metadata (JSON values decoded)."""
    meta: dict[str, Any] = {}
    for key, value in export.metadata.items():
        try:
            meta[key] = json.loads(value)
        except json.JSONDecodeError:
            meta[key] = value
    path = Path(export.path)
    return {
        "name": name, "file": path.name, "task": meta["task"], "dims": int(meta["dims"]),
        "architecture": meta.get("architecture"), "model_name": meta.get("model_name"),
        "model_options": meta.get("model_options"), "parameters": meta.get("parameters"),
        "scale_factor": int(meta.get("scale_factor", 1)),
        "sha256": sha256_file(path), "bytes": path.stat().st_size,
        "opset": int(meta.get("opset", 0)), "noise_range": meta.get("noise_range"),
        "golden": {"input": Path(export.golden_input).name,
                   "output": Path(export.golden_output).name},
        "training_data": meta.get("training_data"), "training": meta.get("training"),
        "test_metrics": meta.get("test_metrics"),
        "pympisr_version": meta.get("pympisr_version"),
    }


@dataclass
class ResolvedModel:
    """A model file and its manifest entry (None for an unlisted file)."""

    path: Path
    entry: dict[str, Any] | None


def find_model(name: str, directory: str | os.PathLike[str] | None = None) -> ResolvedModel:
    """The manifest entry called ``name`` (:class:`ModelNotFoundError` lists the known names)."""
    directory = Path(directory or models_dir())
    manifest = read_manifest(directory)
    for entry in manifest["models"]:
        if entry["name"] == name:
            return ResolvedModel(directory / entry["file"], entry)
    known = ", ".join(m["name"] for m in manifest["models"]) or "none"
    raise ModelNotFoundError(f"no model {name!r} in {directory / MANIFEST_NAME}; known: {known}")


def default_model(task: str, dims: int,
                  directory: str | os.PathLike[str] | None = None) -> ResolvedModel:
    """The first manifest entry for ``task`` and ``dims`` (the manifest's order is the
    preference order)."""
    directory = Path(directory or models_dir())
    manifest = read_manifest(directory)
    for entry in manifest["models"]:
        if entry["task"] == task and int(entry["dims"]) == int(dims):
            return ResolvedModel(directory / entry["file"], entry)
    raise ModelNotFoundError(f"{directory / MANIFEST_NAME}: no {dims}D model for task {task!r}")


def resolve_model(model: str | os.PathLike[str] | None, *, task: str | None = None,
                  dims: int | None = None) -> ResolvedModel:
    """Resolve a model given as a manifest name, a path, or None (default for task/dims).

    A path that sits in a folder whose manifest lists its file name gets that entry, so
    it is verified like a named model.
    """
    if model is None:
        if task is None or dims is None:
            raise ValueError("give a model, or a task and dims to pick the default model")
        return default_model(task, dims)
    text = os.fspath(model)
    path = Path(text)
    if not path.suffix == ".onnx" and os.sep not in text:
        return find_model(text)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model file not found")
    entry = None
    if (path.parent / MANIFEST_NAME).is_file():
        for candidate in read_manifest(path.parent)["models"]:
            if candidate["file"] == path.name:
                entry = candidate
    return ResolvedModel(path, entry)


def verify_model(resolved: ResolvedModel) -> None:
    """Check the file exists and its sha256 matches the manifest entry (if any).

    Raises
    ------
    FileNotFoundError
        The model file is missing.
    ModelIntegrityError
        The checksum differs from the manifest's.
    """
    if not resolved.path.is_file():
        raise FileNotFoundError(f"{resolved.path}: model file listed in the manifest is "
                                "missing")
    if resolved.entry is None:
        return
    actual = sha256_file(resolved.path)
    expected = resolved.entry["sha256"]
    if actual != expected:
        raise ModelIntegrityError(
            f"{resolved.path}: sha256 {actual} does not match the manifest's {expected} "
            f"for model {resolved.entry['name']!r}; the file is corrupt or was replaced "
            "(re-fetch it, or re-register it with `pympisr export --register`)")
