"""Bad user input gives one clean `Error: ...` line (no traceback); genuine bugs keep
their traceback (issue 9, items 5, 9, 13)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner, Result

from mdf_factory import make_measurement_file, make_system_matrix_file
from pympisr.cli import main
from pympisr.datasets.store import ComponentStore, DatasetItem, item_path, write_item
from pympisr.errors import (CheckpointError, ConfigError, DatasetError, InvalidInputError,
                            PympisrError)
from pympisr.reco import select_frequencies
from pympisr.simulation.generate import SelectionRule, generate_dataset


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_user_error(result: Result, *fragments: str, code: int = 1) -> None:
    """Exit ``code`` with an `Error:` line containing ``fragments`` and no traceback."""
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    assert "Traceback" not in result.output
    error = [line for line in result.output.splitlines() if "Error:" in line]
    assert error, result.output
    text = result.output[result.output.index("Error:"):]
    for fragment in fragments:
        assert fragment in text, (fragment, result.output)


def toy_item(rng: np.random.Generator, components: int = 6) -> DatasetItem:
    ny, nx = (int(n) for n in rng.integers(8, 13, 2))
    comps = (rng.standard_normal((components, 1, ny, nx))
             + 1j * rng.standard_normal((components, 1, ny, nx))).astype(np.complex64)
    return DatasetItem(components=comps, channel=np.zeros(components),
                       frequency_index=np.arange(1, components + 1),
                       energy=np.sum(np.abs(comps) ** 2, axis=(1, 2, 3)), grid=(nx, ny, 1),
                       fov=np.full(3, 0.02), center=np.zeros(3), params={"toy": True})


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("toy")
    rng = np.random.default_rng(1)
    for split, count in (("train", 3), ("val", 2)):
        for i in range(count):
            write_item(item_path(root, split, i), toy_item(rng))
    return root


@pytest.fixture
def blocker(tmp_path: Path) -> Path:
    path = tmp_path / "somefile.txt"
    path.write_text("a regular file")
    return path


# ------------------------------------------------------------------ output paths
def test_out_inside_a_regular_file(blocker: Path, toy_data: Path, tmp_path: Path) -> None:
    assert_user_error(invoke("dataset", "--out", blocker / "x", "--train", 1, "--val", 0,
                             "--test", 0, "--no-progress"), "somefile.txt", "not a folder")
    item = item_path(toy_data, "train", 0)
    assert_user_error(invoke("plot", item, "--out", blocker / "x.png"), "somefile.txt")
    sm, meas = tmp_path / "sm.mdf", tmp_path / "meas.mdf"
    make_system_matrix_file(sm)
    make_measurement_file(meas)
    assert_user_error(invoke("reconstruct", "--sm", sm, "--meas", meas,
                             "--out", blocker / "img.h5"), "somefile.txt", "not a folder")
    assert blocker.read_text() == "a regular file"


# ------------------------------------------------------------------ option values
@pytest.mark.parametrize("option, value, message", [
    ("--snr-thresh", "nan", "not a finite number"),
    ("--min-freq", "nan", "not a finite number"),
    ("--max-freq", "inf", "not a finite number"),
    ("--lambd", "nan", "not a finite number"),
    ("--channels", "0,0", "more than once"),
    ("--channels", "-1", "0-based"),
    ("--frames", str(2**70), "at most"),
    ("--frames", "1,1", "more than once"),
])
def test_reconstruct_rejects_bad_values(tmp_path: Path, option: str, value: str,
                                        message: str) -> None:
    sm, meas = tmp_path / "sm.mdf", tmp_path / "meas.mdf"
    sm.write_bytes(b"")  # never read: option parsing fails first
    meas.write_bytes(b"")
    result = invoke("reconstruct", "--sm", sm, "--meas", meas, "--out", tmp_path / "x.h5",
                    option, value)
    assert_user_error(result, option, message, code=2)  # click's usage-error status
    assert not (tmp_path / "x.h5").exists()


def test_reconstruct_frame_out_of_range_is_a_user_error(tmp_path: Path) -> None:
    sm, meas = tmp_path / "sm.mdf", tmp_path / "meas.mdf"
    make_system_matrix_file(sm)
    make_measurement_file(meas)
    assert_user_error(invoke("reconstruct", "--sm", sm, "--meas", meas, "--out",
                             tmp_path / "x.h5", "--frames", "999"), "999")


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_infinite_frequencies_from_huge_bandwidth(tmp_path: Path) -> None:
    sm, meas = tmp_path / "sm.mdf", tmp_path / "meas.mdf"
    make_system_matrix_file(sm, bandwidth=1e308)
    make_measurement_file(meas, bandwidth=1e308)
    assert_user_error(invoke("reconstruct", "--sm", sm, "--meas", meas, "--out",
                             tmp_path / "x.h5"), "not finite", "bandwidth")
    assert not (tmp_path / "x.h5").exists()


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_dataset_threshold_must_be_finite(tmp_path: Path, value: str) -> None:
    result = invoke("dataset", "--out", tmp_path / "d", "--threshold", value, "--no-progress")
    assert_user_error(result, "--threshold", code=2)
    assert not (tmp_path / "d").exists()


def test_selection_rule_and_frequency_filter_validate_in_the_library() -> None:
    with pytest.raises(InvalidInputError, match="threshold"):
        SelectionRule(threshold=math.nan)
    with pytest.raises(InvalidInputError, match="max_components"):
        SelectionRule(max_components=0)
    snr = np.ones((2, 4))
    freqs = np.array([0.0, 1e3, 2e3, 3e3])
    for kwargs, message in [({"snr_thresh": math.nan}, "snr_thresh"),
                            ({"min_freq": math.nan}, "min_freq"),
                            ({"max_freq": math.nan}, "max_freq"),
                            ({"rec_channels": [0, 0]}, "more than once")]:
        with pytest.raises(InvalidInputError, match=message):
            select_frequencies(snr, freqs, **kwargs)
    with pytest.raises(InvalidInputError, match="not finite"):
        select_frequencies(snr, np.array([0.0, 1e308, np.inf, np.inf]))
    assert select_frequencies(snr, freqs, rec_channels=[1, 0]).shape == (8, 2)


def test_item_without_components_can_be_written(tmp_path: Path) -> None:
    # a simulated SM may keep no component (e.g. all energies zero); h5py used to fail
    # with a chunk-shape error on such an item
    from pympisr.datasets import read_item

    item = toy_item(np.random.default_rng(0), components=0)
    write_item(item_path(tmp_path, "train", 0), item)
    assert read_item(item_path(tmp_path, "train", 0)).components.shape == (0, 1, *item.components.shape[2:])
    assert len(ComponentStore(tmp_path, "train")) == 0


# ------------------------------------------------------------------ files
def test_export_of_a_file_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    assert_user_error(invoke("export", text, "--out", tmp_path / "m.onnx"),
                      "notes.pt", "not a pympisr training checkpoint")
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    assert_user_error(invoke("export", other, "--out", tmp_path / "m.onnx"),
                      "other.pt", "not a pympisr training checkpoint")
    from pympisr.training import load_checkpoint

    with pytest.raises(CheckpointError):
        load_checkpoint(text)
    assert not (tmp_path / "m.onnx").exists()


def test_binary_config_names_the_file(tmp_path: Path) -> None:
    config = tmp_path / "experiment.toml"
    config.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x01")
    assert_user_error(invoke("train", config), "experiment.toml", "not a TOML text file")
    from pympisr.training import load_config

    with pytest.raises(ConfigError, match="experiment.toml"):
        load_config(config)


def test_nan_in_config_is_rejected(tmp_path: Path, toy_data: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f"[data]\nroot = {str(toy_data)!r}\n[optimizer]\nlr = nan\n")
    assert_user_error(invoke("train", config), "c.toml", "optimizer.lr", "finite")


def test_corrupt_dataset_json_names_the_file(tmp_path: Path, toy_data: Path) -> None:
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(toy_data, root)
    (root / "dataset.json").write_bytes(b"{\"dims\": 2, \xff")
    with pytest.raises(DatasetError, match="dataset.json"):
        ComponentStore(root, "train").info
    with pytest.raises(DatasetError, match="dataset.json"):
        generate_dataset(root, splits={"train": 1}, workers=1, progress=False)
    assert_user_error(invoke("dataset", "--out", root, "--train", 1, "--val", 0, "--test", 0,
                             "--no-progress"), "dataset.json")
    from pympisr.training.data import dataset_description

    with pytest.raises(DatasetError, match="dataset.json"):
        dataset_description(root)


def test_resuming_a_finished_training_reports_real_losses(tmp_path: Path,
                                                          toy_data: Path) -> None:
    config = tmp_path / "tiny.toml"
    config.write_text(f"""
[experiment]
name = "tiny"
output_dir = {str(tmp_path / "run")!r}
[data]
root = {str(toy_data)!r}
patch_size = 16
val_components = 4
[model]
name = "dncnn-tiny"
options = {{ features = 4 }}
[train]
steps = 4
batch_size = 4
log_every = 2
val_every = 2
checkpoint_every = 2
threads = 1
device = "cpu"
""")
    first = invoke("train", config, "--quiet")
    assert first.exit_code == 0, first.output
    again = invoke("train", config, "--quiet", "--resume")
    assert again.exit_code == 0, again.output
    assert "already finished at step 4" in again.output
    assert "nan" not in again.output.lower(), again.output


# ------------------------------------------------------------------ bugs vs user errors
def test_bugs_keep_their_traceback(toy_data: Path, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import pympisr.plotting

    def bug(*args: object, **kwargs: object) -> None:
        raise ValueError("an internal bug")

    monkeypatch.setattr(pympisr.plotting, "plot_strongest_components", bug)
    result = invoke("plot", item_path(toy_data, "train", 0), "--out", tmp_path / "p.png")
    assert isinstance(result.exception, ValueError)  # not turned into "Error: ..."
    assert "Error: an internal bug" not in result.output

    def user_error(*args: object, **kwargs: object) -> None:
        raise InvalidInputError("p.png: bad input")

    monkeypatch.setattr(pympisr.plotting, "plot_strongest_components", user_error)
    assert_user_error(invoke("plot", item_path(toy_data, "train", 0), "--out",
                             tmp_path / "p.png"), "p.png: bad input")


def test_one_exception_hierarchy_with_old_import_locations() -> None:
    import pympisr.errors as errors
    from pympisr import julia, model_zoo
    from pympisr.export import onnx as export_onnx
    from pympisr.mdf import reader

    assert julia.JuliaUnavailableError is errors.JuliaUnavailableError
    assert export_onnx.ExportCheckError is errors.ExportCheckError
    assert model_zoo.ModelNotFoundError is errors.ModelNotFoundError
    assert model_zoo.ModelIntegrityError is errors.ModelIntegrityError
    assert reader.MDFWarning is errors.MDFWarning
    for name in errors.__all__:
        cls = getattr(errors, name)
        # errors derive from PympisrError; the warnings (MDFWarning, StandInDataWarning,
        # FitWarning) from UserWarning
        assert issubclass(cls, PympisrError) or issubclass(cls, UserWarning), name
        assert cls.__module__ == "pympisr.errors", name
    assert issubclass(errors.ConfigError, ValueError)
    assert issubclass(errors.ModelNotFoundError, LookupError)
    from pympisr.models.registry import model_spec

    with pytest.raises(errors.ModelNotFoundError, match="no-such-net") as info:
        model_spec("no-such-net")
    assert isinstance(info.value, KeyError)
    assert str(info.value).startswith("unknown model 'no-such-net'")


def test_unknown_architecture_in_config_is_a_user_error(tmp_path: Path, toy_data: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f"[data]\nroot = {str(toy_data)!r}\n[model]\nname = \"no-such-net\"\n"
                      f"[experiment]\noutput_dir = {str(tmp_path / 'run')!r}\n")
    assert_user_error(invoke("train", config), "no-such-net")


def test_dataset_json_written_by_generate_is_json(tmp_path: Path) -> None:
    info = generate_dataset(tmp_path / "d", splits={"train": 1}, workers=1, grid_max=8,
                            model="langevin", progress=False)
    assert json.loads((tmp_path / "d" / "dataset.json").read_text()) == info
