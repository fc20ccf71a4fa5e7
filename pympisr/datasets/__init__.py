"""On-disk datasets of simulated system matrices (see :mod:`pympisr.datasets.store`)."""

from .store import ComponentStore, DatasetItem, read_dataset_info, read_item, write_item

__all__ = ["ComponentStore", "DatasetItem", "read_dataset_info", "read_item", "write_item"]
