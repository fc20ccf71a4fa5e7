"""The shipped ONNX models: folder, manifest, checksums, lookup.

Models live in one folder (:func:`models_dir`): ``$PYMPISR_MODELS`` if set, else the
repository's ``onnx_models/`` when pympisr runs from a checkout (or an editable
install), else the copy of that folder shipped inside an installed wheel as package
data (``pympisr.onnx_models``, found with :mod:`importlib.resources`).
``manifest.json`` there lists each model::

    {"format": "pympisr-model-manifest", "version": 1,
     "models": [{"name": "denoise-dncnn-small-2d", "file": "....onnx", "task": "denoise",
                 "dims": 2, "architecture": "DnCNN", "model_name": "dncnn-small",
                 "model_options": {...}, "parameters": 56866, "sha256": "...",
                 "bytes": 229000, "opset": 17, "noise_range": [0.0, 0.35],
                 "golden": {"input": "...", "output": "..."},
                 "training": {...}, "test_metrics": {...}, "pympisr_version": "0.1.0"}]}

A model file is used only when something vouches for it (:func:`verify_model`):

* ``"manifest"``: it is listed in the ``manifest.json`` of its folder and its sha256
  matches the entry;
* ``"sidecar"``: a sha256 sidecar ``<model>.onnx.sha256`` (``sha256sum`` format, written
  by ``pympisr export``) lies beside it and matches;
* ``"trusted by user"``: neither exists and the caller passed ``trust=True``
  (``--trust-model``); otherwise :class:`UntrustedModelError`.

A mismatch with a manifest entry or a sidecar is always an error
(:class:`ModelIntegrityError`), also with ``trust=True``.

Manifest entries never record absolute paths of the machine a model was trained on
(:func:`manifest_entry` keeps only folder names).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import atomic_output
from .errors import (ManifestError, ModelIntegrityError, ModelNotFoundError,
                     UntrustedModelError)

__all__ = ["MANIFEST_NAME", "ManifestError", "ModelIntegrityError", "ModelNotFoundError",
           "ResolvedModel", "SIDECAR_SUFFIX", "UntrustedModelError",
           "VERIFIED_BY_MANIFEST", "VERIFIED_BY_SIDECAR", "VERIFIED_BY_USER",
           "decoded_metadata", "default_model", "find_model", "manifest_entry", "models_dir",
           "portable_paths",
           "read_manifest", "read_sidecar", "register_model", "resolve_model",
           "sha256_file", "sidecar_path", "verify_model", "write_manifest",
           "write_sidecar"]

MANIFEST_NAME = "manifest.json"
ENV_VAR = "PYMPISR_MODELS"
SIDECAR_SUFFIX = ".sha256"
_FORMAT = "pympisr-model-manifest"
VERIFIED_BY_MANIFEST = "manifest"
VERIFIED_BY_SIDECAR = "sidecar"
VERIFIED_BY_USER = "trusted by user"


def models_dir() -> Path:
    """The folder of the shipped models (module docstring).

    Order: ``$PYMPISR_MODELS``; ``<repository>/onnx_models`` if it holds a manifest
    (running from a checkout); the installed package data ``pympisr.onnx_models``; and
    if none of them exists, the repository path (so error messages name it).
    """
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parent.parent / "onnx_models"
    if (checkout / MANIFEST_NAME).is_file():
        return checkout
    installed = _installed_models_dir()
    return installed if installed is not None else checkout


def _installed_models_dir() -> Path | None:
    """The wheel's ``pympisr/onnx_models`` folder, or None if it is not installed."""
    from importlib import resources

    try:
        folder = resources.files("pympisr.onnx_models")
    except ModuleNotFoundError:
        return None
    # a namespace package (no __init__.py) gives a MultiplexedPath; its joinpath
    # returns the file's real path in whichever folder holds it
    manifest = folder.joinpath(MANIFEST_NAME)
    if not isinstance(manifest, Path) or not manifest.is_file():
        return None
    return manifest.parent


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(directory: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The manifest of ``directory`` (default :func:`models_dir`).

    Raises FileNotFoundError if there is none, :class:`ManifestError` (a ValueError) if it
    is malformed.
    """
    path = Path(directory or models_dir()) / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no model manifest (set {ENV_VAR} to the folder "
                                "holding manifest.json and the .onnx files)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT \
            or not isinstance(manifest.get("models"), list):
        raise ManifestError(f"{path}: not a pympisr model manifest (format {_FORMAT!r} "
                            "with a 'models' list expected)")
    for i, entry in enumerate(manifest["models"]):
        if not isinstance(entry, dict):
            raise ManifestError(f"{path}: models[{i}]: a JSON object expected")
        missing = {"name", "file", "task", "dims", "sha256"} - set(entry)
        if missing:
            raise ManifestError(f"{path}: models[{i}] lacks {sorted(missing)}")
        _check_safety_entry(entry.get("safety", {}), f"{path}: models[{i}].safety")
    return manifest


def _check_safety_entry(safety: Any, where: str) -> None:
    """Raise :class:`ManifestError` unless ``safety`` maps option names of
    :data:`pympisr.restoration.safety.MODEL_TUNABLE` to finite positive numbers."""
    from .restoration.safety import MODEL_TUNABLE

    if not isinstance(safety, dict):
        raise ManifestError(f"{where}: a JSON object expected, got {type(safety).__name__}")
    unknown = sorted(set(safety) - set(MODEL_TUNABLE))
    if unknown:
        raise ManifestError(f"{where}: unknown options {unknown}; known: "
                            f"{list(MODEL_TUNABLE)}")
    for key, value in safety.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or value <= 0:
            raise ManifestError(f"{where}.{key}: a finite positive number expected, "
                                f"got {value!r}")


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


def _looks_absolute(value: str) -> bool:
    return "\n" not in value and (os.path.isabs(value) or
                                  (len(value) > 2 and value[1] == ":" and value[2] in "\\/"))


def portable_paths(value: Any) -> Any:
    """``value`` (nested JSON data) with every absolute path replaced by its last
    component, so records do not leak the training machine's folder layout."""
    if isinstance(value, dict):
        return {k: portable_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [portable_paths(v) for v in value]
    if isinstance(value, str) and _looks_absolute(value):
        return value.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    return value


def _training_data_record(data: Any) -> Any:
    """The ``training_data`` of a manifest entry: the dataset's description, seed and
    settings; a path only when it is relative (to the training run's folder)."""
    if not isinstance(data, dict):
        return data
    record = dict(data)
    path = record.get("path")
    if isinstance(path, str) and _looks_absolute(path):
        del record["path"]
        record.setdefault("folder", portable_paths(path))
    return portable_paths(record)


def decoded_metadata(props: dict[str, str]) -> dict[str, Any]:
    """An ONNX model's ``metadata_props`` strings with the JSON values decoded (the
    other strings kept as they are)."""
    meta: dict[str, Any] = {}
    for key, value in props.items():
        try:
            meta[key] = json.loads(value)
        except json.JSONDecodeError:
            meta[key] = value
    return meta


def manifest_entry(name: str, export: Any) -> dict[str, Any]:
    """Manifest entry for an exported model (a :class:`pympisr.export.ExportResult`):
    file names, sha256 and size, and the model's metadata (JSON values decoded).

    Absolute paths in the metadata (the training data folder, the run's output folder)
    are reduced to folder names (:func:`portable_paths`)."""
    meta = decoded_metadata(export.metadata)
    path = Path(export.path)
    return {
        "name": name, "file": path.name, "task": meta["task"], "dims": int(meta["dims"]),
        "architecture": meta.get("architecture"), "model_name": meta.get("model_name"),
        "model_options": meta.get("model_options"), "parameters": meta.get("parameters"),
        "scale_factor": int(meta.get("scale_factor", 1)),
        "sha256": sha256_file(path), "bytes": path.stat().st_size,
        "opset": int(meta.get("opset", 0)), "noise_range": meta.get("noise_range"),
        "grid_rule": meta.get("grid_rule", "same"), "inputs": meta.get("inputs", ["sm"]),
        "golden": {"input": Path(export.golden_input).name,
                   "output": Path(export.golden_output).name,
                   **{k: Path(v).name for k, v in getattr(export, "golden_extra", {}).items()}},
        "training_data": _training_data_record(meta.get("training_data")),
        "training": portable_paths(meta.get("training")),
        "test_metrics": meta.get("test_metrics"),
        "pympisr_version": meta.get("pympisr_version"),
    }


def sidecar_path(model_path: str | os.PathLike[str]) -> Path:
    """``<model>.onnx.sha256`` beside the model file."""
    path = Path(model_path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def read_sidecar(model_path: str | os.PathLike[str]) -> str | None:
    """The sha256 recorded in the model's sidecar, or None if there is no sidecar.

    Raises :class:`ModelIntegrityError` if the sidecar does not start with a 64-digit
    hexadecimal sha256.
    """
    side = sidecar_path(model_path)
    if not side.is_file():
        return None
    try:
        text = side.read_text(encoding="ascii")
    except (UnicodeDecodeError, OSError) as exc:
        raise ModelIntegrityError(f"{side}: unreadable sha256 sidecar ({exc})") from exc
    fields = text.split()
    digest = fields[0].lower() if fields else ""
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ModelIntegrityError(f"{side}: not a sha256 sidecar (expected a line "
                                  "'<64 hex digits>  <file name>')")
    return digest


def write_sidecar(model_path: str | os.PathLike[str], *, overwrite: bool = True) -> Path:
    """Write ``<model>.onnx.sha256`` (``sha256sum`` format) for the model file; atomic."""
    path = Path(model_path)
    side = sidecar_path(path)
    with atomic_output(side, overwrite=overwrite) as tmp:
        tmp.write_text(f"{sha256_file(path)}  {path.name}\n", encoding="ascii")
    return side


@dataclass
class ResolvedModel:
    """A model file and its manifest entry (None for an unlisted file).

    ``trusted``: the user vouched for an unlisted file without a sidecar (``trust=True``).
    """

    path: Path
    entry: dict[str, Any] | None
    trusted: bool = False


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
                  directory: str | os.PathLike[str] | None = None, *,
                  scale: int | None = None) -> ResolvedModel:
    """The first manifest entry for ``task``, ``dims`` and (super-resolution) ``scale``
    (the manifest's order is the preference order)."""
    directory = Path(directory or models_dir())
    manifest = read_manifest(directory)
    for entry in manifest["models"]:
        if entry["task"] == task and int(entry["dims"]) == int(dims) and (
                scale is None or int(entry.get("scale_factor", 1)) == int(scale)):
            return ResolvedModel(directory / entry["file"], entry)
    at = "" if scale is None else f" at scale {scale}"
    raise ModelNotFoundError(f"{directory / MANIFEST_NAME}: no {dims}D model for task "
                             f"{task!r}{at}")


def resolve_model(model: str | os.PathLike[str] | None, *, task: str | None = None,
                  dims: int | None = None, trust: bool = False,
                  scale: int | None = None) -> ResolvedModel:
    """Resolve a model given as a manifest name, a path, or None (default for task/dims).

    A path that sits in a folder whose manifest lists its file name gets that entry, so
    it is verified like a named model. Any other path needs a sha256 sidecar
    (``<model>.onnx.sha256``) or ``trust=True``.

    Raises
    ------
    ModelNotFoundError
        No manifest entry of that name / for that task and dims.
    FileNotFoundError
        The model path does not exist.
    UntrustedModelError
        An unlisted file without sidecar, and ``trust`` is False.
    """
    if model is None:
        if task is None or dims is None:
            raise ValueError("give a model, or a task and dims to pick the default model")
        return default_model(task, dims, scale=scale)
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
    resolved = ResolvedModel(path, entry, trusted=bool(trust))
    if entry is None and not trust and not sidecar_path(path).is_file():
        raise UntrustedModelError(_untrusted_message(path))
    return resolved


def _untrusted_message(path: Path) -> str:
    return (f"{path}: model is not listed in a {MANIFEST_NAME} and has no sha256 sidecar "
            f"{sidecar_path(path).name}, so its integrity cannot be checked; register it "
            "(`pympisr export --register`), or pass --trust-model (trust=True) if you "
            "trust this file")


def verify_model(resolved: ResolvedModel) -> str:
    """Check that something vouches for the model file; return how it was verified:
    :data:`VERIFIED_BY_MANIFEST`, :data:`VERIFIED_BY_SIDECAR` or :data:`VERIFIED_BY_USER`
    (module docstring).

    Raises
    ------
    FileNotFoundError
        The model file is missing.
    ModelIntegrityError
        The checksum differs from the manifest's or the sidecar's.
    UntrustedModelError
        Neither manifest entry nor sidecar, and ``resolved.trusted`` is False.
    """
    if not resolved.path.is_file():
        raise FileNotFoundError(f"{resolved.path}: model file not found")
    if resolved.entry is not None:
        actual = sha256_file(resolved.path)
        expected = resolved.entry["sha256"]
        if actual != expected:
            raise ModelIntegrityError(
                f"{resolved.path}: sha256 {actual} does not match the manifest's {expected} "
                f"for model {resolved.entry['name']!r}; the file is corrupt or was replaced "
                "(re-fetch it, or re-register it with `pympisr export --register`)")
        return VERIFIED_BY_MANIFEST
    expected_side = read_sidecar(resolved.path)
    if expected_side is not None:
        actual = sha256_file(resolved.path)
        if actual != expected_side:
            raise ModelIntegrityError(
                f"{resolved.path}: sha256 {actual} does not match {expected_side} in "
                f"{sidecar_path(resolved.path).name}; the file is corrupt or was replaced")
        return VERIFIED_BY_SIDECAR
    if resolved.trusted:
        return VERIFIED_BY_USER
    raise UntrustedModelError(_untrusted_message(resolved.path))
