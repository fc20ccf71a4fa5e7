"""Dataset generation: deterministic, resumable, readable through ComponentStore."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from pympisr.datasets import ComponentStore, read_item
from pympisr.datasets.store import item_path
from pympisr.simulation.generate import (SelectionRule, generate_dataset, item_parameters,
                                         item_seed, simulate_item)
from pympisr.simulation.system_matrix import simulate_system_matrix

SPLITS = {"train": 3, "val": 1, "test": 1}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds") / "d2"
    generate_dataset(root, dims=2, splits=SPLITS, seed=11, workers=1, grid_max=14,
                     progress=False)
    return root


def items(root):
    return {p.relative_to(root).as_posix(): read_item(p)
            for split in SPLITS for p in sorted((root / split).glob("*.h5"))}


def test_layout_and_component_store(dataset):
    info = json.loads((dataset / "dataset.json").read_text())
    assert info["dims"] == 2 and info["seed"] == 11 and info["splits"] == SPLITS
    assert info["rule"] == {"threshold": 1e-5, "max_components": 400}
    for split, count in SPLITS.items():
        assert len(list((dataset / split).glob("*.h5"))) == count
    store = ComponentStore(dataset, "train")
    assert len(store) == sum(int(c) for c in store.counts) > 0
    component, item, row = store[len(store) - 1]
    first = store.item(item)
    assert component.shape == first.components.shape[1:] and component.dtype == np.complex64
    np.testing.assert_array_equal(component, first.components[row])
    assert store.info["dims"] == 2


def test_items_follow_selection_rule_and_store_parameters(dataset):
    for number, (name, item) in enumerate(items(dataset).items()):
        split, index = name.split("/")[0], int(name.split("/")[1][:5])
        assert item.params["seed"] == item_seed(11, split, index)
        assert max(item.grid[:2]) <= 14 and item.grid[2] == 1
        assert 0 < len(item.channel) <= 400
        assert np.all(item.frequency_index >= 1)
        pairs = set(zip(item.channel.tolist(), item.frequency_index.tolist()))
        assert len(pairs) == len(item.channel)  # no duplicates
        energy = np.sum(np.abs(item.components.astype(np.complex128)) ** 2, axis=(1, 2, 3))
        np.testing.assert_allclose(item.energy, energy, rtol=1e-4)
        assert item.energy.min() >= 1e-5 * item.energy.max() * (1 - 1e-6)
        if number:
            continue
        # the stored components are the simulated SM's rows (checked on the first item)
        params = item_parameters(11, split, index, dims=2, model="anisotropy", grid_max=14)
        sm = simulate_system_matrix(params, frequencies=np.unique(item.frequency_index))
        rows = np.searchsorted(sm.frequency_indices, item.frequency_index)
        np.testing.assert_allclose(item.components, sm.data[item.channel, rows], rtol=1e-5,
                                   atol=1e-5 * np.abs(item.components).max())


def test_deterministic_across_worker_counts(dataset, tmp_path):
    other = tmp_path / "again"
    generate_dataset(other, dims=2, splits=SPLITS, seed=11, workers=2, grid_max=14,
                     progress=False)
    a, b = items(dataset), items(other)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key].components, b[key].components)
        np.testing.assert_array_equal(a[key].frequency_index, b[key].frequency_index)
        assert a[key].params == b[key].params


def test_resumes_after_kill(dataset, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(dataset, root)
    victim = item_path(root, "train", 1)
    reference = read_item(victim)
    victim.unlink()  # killed before this item was renamed into place ...
    stray = root / "train" / ".00001.h5.abc123.tmp"
    stray.write_bytes(b"half-written")  # ... leaving its temporary file
    survivor = item_path(root, "train", 0)
    before = survivor.stat().st_mtime_ns
    generate_dataset(root, dims=2, splits=SPLITS, seed=11, workers=1, grid_max=14,
                     progress=False)
    assert not stray.exists()
    assert survivor.stat().st_mtime_ns == before  # finished items are not redone
    again = read_item(victim)
    np.testing.assert_array_equal(again.components, reference.components)
    assert sorted(p.name for p in (root / "train").iterdir()) == [
        "00000.h5", "00001.h5", "00002.h5"]
    with pytest.raises(ValueError, match="different settings"):
        generate_dataset(root, dims=2, splits=SPLITS, seed=12, workers=1, grid_max=14,
                         progress=False)


def test_selection_rule():
    energy = np.zeros((3, 10))
    energy[0, 0] = 1e9  # DC is never kept
    energy[0, 3], energy[1, 5], energy[2, 7], energy[2, 8] = 1.0, 0.5, 2e-6, 1e-3
    pairs = SelectionRule(threshold=1e-4, max_components=10).select(energy)
    assert pairs.tolist() == [[0, 3], [1, 5], [2, 8]]
    assert SelectionRule(threshold=1e-4, max_components=2).select(energy).tolist() == [
        [0, 3], [1, 5]]


def test_3d_item_ranks_on_subgrid_and_stores_exact_rows():
    params = item_parameters(5, "train", 0, dims=3, model="anisotropy", grid_max=None)
    params = params.replace(grid=(17, 4, 3))  # an axis above 16: sub-grid ranking path
    item = simulate_item(params, SelectionRule(threshold=1e-3, max_components=25))
    assert item.components.shape == (len(item.channel), 3, 4, 17) and len(item.channel) <= 25
    sm = simulate_system_matrix(params, frequencies=np.unique(item.frequency_index))
    rows = np.searchsorted(sm.frequency_indices, item.frequency_index)
    np.testing.assert_allclose(item.components, sm.data[item.channel, rows], rtol=1e-5,
                               atol=1e-5 * np.abs(item.components).max())


def test_cli_dataset_command(tmp_path):
    from pympisr.cli import main

    out = tmp_path / "cli"
    result = CliRunner().invoke(main, ["dataset", "--dims", "2", "--train", "1", "--val", "0",
                                       "--test", "0", "--out", str(out), "--seed", "3",
                                       "--workers", "1", "--grid-max", "12",
                                       "--max-components", "50", "--no-progress"])
    assert result.exit_code == 0, result.output
    with h5py.File(item_path(out, "train", 0)) as f:
        assert f["components"].shape[0] <= 50
    assert json.loads((out / "dataset.json").read_text())["rule"]["max_components"] == 50


def test_sampler_ranges_reach_the_items_and_dataset_json(tmp_path):
    from pympisr.cli import main
    from pympisr.simulation.parameters import sample_parameters

    out = tmp_path / "wide"
    args = ["dataset", "--dims", "2", "--train", "2", "--val", "0", "--test", "0",
            "--out", str(out), "--seed", "4", "--workers", "1", "--max-components", "20",
            "--spf-range", "40,60", "--grid-range", "12,16", "--no-progress"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    info = json.loads((out / "dataset.json").read_text())
    assert info["sampler_ranges"]["samples_per_fwhm"] == [40.0, 60.0]
    assert info["sampler_ranges"]["grid"] == [12, 16]
    with h5py.File(item_path(out, "train", 0)) as f:
        assert max(f["components"].shape[2:]) <= 16
    params = sample_parameters(1, ranges={"samples_per_fwhm": (40, 60)})
    assert 40 <= params.extra["samples_per_fwhm"] <= 60
    # completing the dataset with other ranges is refused
    again = CliRunner().invoke(main, [*args[:-5], "--spf-range", "4,12", "--no-progress"])
    assert again.exit_code != 0 and "different settings" in again.output
    bad = CliRunner().invoke(main, [*args[:-1], "--spf-range", "5,1"])
    assert bad.exit_code != 0 and "lo,hi" in bad.output
