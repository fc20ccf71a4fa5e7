"""Model provenance: unlisted models need a sha256 sidecar or explicit trust, describe()
says how a model was verified, corrupt files give ModelLoadError, export writes the
sidecar, manifests hold no absolute paths (issue 9, items 5, 6, 15)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pympisr.cli import main
from pympisr.datasets.store import DatasetItem, item_path, write_item
from pympisr.errors import (ModelIntegrityError, ModelLoadError, PympisrError,
                            UntrustedModelError)
from pympisr.model_zoo import (MANIFEST_NAME, manifest_entry, models_dir, read_manifest,
                               resolve_model, sha256_file, sidecar_path, verify_model,
                               write_sidecar)
from pympisr.restoration import OnnxRestorer

SHIPPED = "denoise_dncnn_small_2d"


def identity_model(path: Path, task: str = "denoise") -> Path:
    """A minimal pympisr-style ONNX model: restored = sm."""
    import onnx
    from onnx import TensorProto, helper

    sm = helper.make_tensor_value_info("sm", TensorProto.FLOAT, ["B", 2, "H", "W"])
    out = helper.make_tensor_value_info("restored", TensorProto.FLOAT, ["B", 2, "H", "W"])
    graph = helper.make_graph([helper.make_node("Identity", ["sm"], ["restored"])],
                              "identity", [sm], [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              ir_version=8)
    helper.set_model_props(model, {"task": task, "dims": "2"})
    onnx.save(model, path)
    return path


def test_unlisted_model_is_refused_unless_trusted(tmp_path: Path) -> None:
    model = identity_model(tmp_path / "ident.onnx")
    with pytest.raises(UntrustedModelError, match="--trust-model") as info:
        OnnxRestorer(model)
    assert "ident.onnx" in str(info.value)
    with pytest.raises(UntrustedModelError):
        resolve_model(model)
    restorer = OnnxRestorer(model, trust=True)
    record = restorer.describe()
    assert record["verification"] == "trusted by user"
    assert record["sha256"] == sha256_file(model)
    resolved = resolve_model(model, trust=True)
    assert resolved.trusted and verify_model(resolved) == "trusted by user"
    x = (np.arange(2 * 5 * 6).reshape(2, 5, 6) * (1 + 1j)).astype(np.complex64)
    np.testing.assert_allclose(restorer(x), x)


def test_tampered_copy_of_a_shipped_model_is_refused(tmp_path: Path) -> None:
    shipped = resolve_model(SHIPPED).path
    copy = tmp_path / shipped.name
    shutil.copyfile(shipped, copy)
    with open(copy, "ab") as fh:
        fh.write(b"\0")  # tampered, and outside the manifest folder
    with pytest.raises(UntrustedModelError):
        OnnxRestorer(copy)
    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "demo"),
                                       "--model", str(copy), "--grid", "8"])
    assert result.exit_code == 1, result.output
    assert "Error:" in result.output and "--trust-model" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "demo" / "restored.mdf").exists()


def test_sidecar_vouches_for_a_model_and_catches_tampering(tmp_path: Path) -> None:
    model = identity_model(tmp_path / "ident.onnx")
    side = write_sidecar(model)
    assert side == sidecar_path(model) == tmp_path / "ident.onnx.sha256"
    assert side.read_text() == f"{sha256_file(model)}  ident.onnx\n"
    restorer = OnnxRestorer(model)
    assert restorer.describe()["verification"] == "sidecar"
    with open(model, "ab") as fh:
        fh.write(b"\0")
    for trust in (False, True):  # trust never overrides a checksum mismatch
        with pytest.raises(ModelIntegrityError, match="ident.onnx.sha256"):
            OnnxRestorer(model, trust=trust)
    side.write_text("not a checksum\n")
    with pytest.raises(ModelIntegrityError, match="not a sha256 sidecar"):
        OnnxRestorer(model)


def test_shipped_model_is_verified_by_the_manifest() -> None:
    restorer = OnnxRestorer(SHIPPED)
    record = restorer.describe()
    assert record["verification"] == "manifest"
    assert record["sha256"] == resolve_model(SHIPPED).entry["sha256"]


@pytest.mark.parametrize("content", [b"garbage" * 20, b"", b"\x08\x07" + os.urandom(64)])
def test_corrupt_model_file_gives_a_clear_error(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(content)
    with pytest.raises(ModelLoadError, match="bad.onnx: not a loadable ONNX model"):
        OnnxRestorer(bad, trust=True)
    write_sidecar(bad)
    with pytest.raises(ModelLoadError):
        OnnxRestorer(bad)


def test_onnx_without_pympisr_metadata_is_refused(tmp_path: Path) -> None:
    import onnx

    path = identity_model(tmp_path / "plain.onnx")
    model = onnx.load(str(path))
    del model.metadata_props[:]
    onnx.save(model, str(path))
    with pytest.raises(ModelLoadError, match="not a pympisr model"):
        OnnxRestorer(path, trust=True)


def _tiny_dataset(root: Path) -> Path:
    rng = np.random.default_rng(0)
    comps = (rng.standard_normal((3, 1, 10, 12))
             + 1j * rng.standard_normal((3, 1, 10, 12))).astype(np.complex64)
    write_item(item_path(root, "test", 0), DatasetItem(
        components=comps, channel=np.zeros(3), frequency_index=np.arange(1, 4),
        energy=np.sum(np.abs(comps) ** 2, axis=(1, 2, 3)), grid=(12, 10, 1),
        fov=np.full(3, 0.02), center=np.zeros(3), params={}))
    return root


def test_cli_evaluate_needs_trust_for_unlisted_models(tmp_path: Path) -> None:
    data = _tiny_dataset(tmp_path / "data")
    model = identity_model(tmp_path / "ident.onnx")
    args = ["evaluate", "--data", str(data), "--model", str(model), "--sigmas", "0.1",
            "--no-dct"]
    refused = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "e1")])
    assert refused.exit_code == 1 and "--trust-model" in refused.output
    assert "Traceback" not in refused.output
    trusted = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "e2"), "--trust-model"])
    assert trusted.exit_code == 0, trusted.output
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"definitely not protobuf" * 4)
    bad = CliRunner().invoke(main, ["evaluate", "--data", str(data), "--model", str(corrupt),
                                    "--trust-model", "--out", str(tmp_path / "e3")])
    assert bad.exit_code == 1, bad.output
    assert "Error:" in bad.output and "not a loadable ONNX model" in bad.output
    assert bad.exception is None or isinstance(bad.exception, SystemExit)


def test_export_writes_the_sidecar(tmp_path: Path) -> None:
    from pympisr.export import export_model
    from pympisr.models import build_model

    net = build_model("dncnn-tiny", dims=2, features=4)
    result = export_model(net, tmp_path / "tiny.onnx", metadata={"task": "denoise"})
    assert result.sidecar == tmp_path / "tiny.onnx.sha256"
    assert result.sidecar.read_text().split()[0] == sha256_file(result.path)
    assert OnnxRestorer(result.path).describe()["verification"] == "sidecar"


# ------------------------------------------------------------------ manifest paths
def _absolute_strings(value: object, where: str = "") -> list[str]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _absolute_strings(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _absolute_strings(v, f"{where}[{i}]")]
    if isinstance(value, str) and (value.startswith(("/", "\\", "~"))
                                   or (len(value) > 2 and value[1:3] in (":\\", ":/"))):
        return [f"{where} = {value}"]
    return []


def test_no_manifest_entry_contains_an_absolute_path() -> None:
    manifests = [models_dir() / MANIFEST_NAME]
    assert manifests[0].is_file()
    for manifest in manifests:
        for entry in read_manifest(manifest.parent)["models"]:
            assert _absolute_strings(entry) == [], entry["name"]


def test_manifest_entry_drops_absolute_training_paths(tmp_path: Path) -> None:
    class Export:  # what export_model returns, as far as manifest_entry reads it
        path = identity_model(tmp_path / "m.onnx")
        golden_input = tmp_path / "m.golden_input.npy"
        golden_output = tmp_path / "m.golden_output.npy"
        metadata = {"task": "denoise", "dims": "2",
                    "training_data": json.dumps({"path": "/home/someone/data/sim2d", "seed": 7,
                                                 "description": "toy"}),
                    "training": json.dumps({"config": {"data": {"root": "/home/someone/data/sim2d"},
                                                       "experiment": {"output_dir": "C:\\runs\\a"}}})}

    entry = manifest_entry("m", Export())
    assert _absolute_strings(entry) == []
    assert entry["training_data"] == {"folder": "sim2d", "seed": 7, "description": "toy"}
    assert entry["training"]["config"]["data"]["root"] == "sim2d"
    assert entry["training"]["config"]["experiment"]["output_dir"] == "a"


def test_dataset_description_records_no_absolute_path(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from pympisr.training.data import dataset_description

    root = tmp_path / "sim"
    root.mkdir()
    (root / "dataset.json").write_text(json.dumps({"dims": 2, "seed": 5, "model": "langevin",
                                                   "splits": {"train": 3}}))
    absolute = dataset_description(root)
    assert _absolute_strings(absolute) == []
    assert absolute["folder"] == "sim" and absolute["seed"] == 5 and "path" not in absolute
    assert "seed 5" in absolute["description"]
    monkeypatch.chdir(tmp_path)
    relative = dataset_description("sim")
    assert relative["path"] == "sim"


def test_errors_are_pympisr_errors() -> None:
    for cls in (ModelIntegrityError, ModelLoadError, UntrustedModelError):
        assert issubclass(cls, PympisrError)


def test_no_shipped_model_embeds_an_absolute_path() -> None:
    """The ONNX files' own metadata (not only the manifest) are free of machine paths."""
    import onnx

    for entry in read_manifest(models_dir())["models"]:
        model = onnx.load(str(models_dir() / entry["file"]), load_external_data=False)
        for prop in model.metadata_props:
            try:
                value = json.loads(prop.value)
            except json.JSONDecodeError:
                value = prop.value
            assert _absolute_strings(value, prop.key) == [], entry["name"]


@pytest.mark.parametrize("safety, problem", [
    ([1.0], "JSON object"), ({"tol": 2.0}, "unknown options"),
    ({"network_ceiling": -1}, "finite positive"), ({"network_ceiling": True}, "finite positive"),
    ({"network_ceiling": "1"}, "finite positive")])
def test_manifest_safety_entry_is_checked(tmp_path: Path, safety: object, problem: str) -> None:
    from pympisr.errors import ManifestError

    manifest = read_manifest()
    manifest["models"][0]["safety"] = safety
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match=rf"models\[0\]\.safety.*{problem}"):
        read_manifest(tmp_path)


def test_restorer_reports_the_manifest_safety_entry(tmp_path: Path) -> None:
    source = resolve_model(SHIPPED)
    shutil.copy(source.path, tmp_path / source.path.name)
    manifest = read_manifest()
    entry = next(e for e in manifest["models"] if e["name"] == SHIPPED)
    entry["safety"] = {"network_ceiling": 2.5}
    (tmp_path / MANIFEST_NAME).write_text(json.dumps({**manifest, "models": [entry]}))
    restorer = OnnxRestorer(resolve_model(tmp_path / source.path.name))
    assert restorer.recommended_safety == {"network_ceiling": 2.5}
    assert OnnxRestorer(resolve_model(SHIPPED)).recommended_safety == {}
