"""The dataset store round-trips items and indexes components across files."""

import numpy as np
import pytest

from pympisr import MDFError
from pympisr.datasets import ComponentStore, DatasetItem, read_item, write_item
from pympisr.datasets.store import item_path


def _item(m: int, seed: int) -> DatasetItem:
    rng = np.random.default_rng(seed)
    comps = (rng.normal(size=(m, 1, 5, 6)) + 1j * rng.normal(size=(m, 1, 5, 6))).astype(np.complex64)
    return DatasetItem(components=comps, channel=np.arange(m) % 3, frequency_index=np.arange(m) + 10,
                       energy=np.sum(np.abs(comps) ** 2, axis=(1, 2, 3)), grid=(6, 5, 1),
                       fov=np.array([0.02, 0.02, 0.001]), center=np.zeros(3),
                       params={"diameter": 2e-8, "gradient": np.array([1.0, 1.0, -2.0])})


def test_item_round_trip(tmp_path):
    item = _item(4, 0)
    path = item_path(tmp_path, "train", 3)
    write_item(path, item)
    back = read_item(path)
    np.testing.assert_array_equal(back.components, item.components)
    np.testing.assert_array_equal(back.frequency_index, item.frequency_index)
    assert back.grid == (6, 5, 1) and back.params["gradient"] == [1.0, 1.0, -2.0]
    rows = read_item(path, components=np.array([3, 1]))
    np.testing.assert_array_equal(rows.components, item.components[[3, 1]])
    with pytest.raises(FileExistsError):
        write_item(path, item)


def test_component_store_indexes_all_files(tmp_path):
    items = [_item(m, s) for s, m in enumerate([2, 5, 3])]
    for i, item in enumerate(items):
        write_item(item_path(tmp_path, "val", i), item)
    store = ComponentStore(tmp_path, "val")
    assert len(store) == 10
    comp, item, row = store[6]
    assert (item, row) == (1, 4)
    np.testing.assert_array_equal(comp, items[1].components[4])
    with pytest.raises(IndexError):
        store[10]


def test_unreadable_item_raises_mdf_error(tmp_path):
    bad = tmp_path / "00000.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(MDFError, match="00000.h5"):
        read_item(bad)
