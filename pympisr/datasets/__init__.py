"""On-disk datasets of simulated system matrices (see :mod:`pympisr.datasets.store`)."""

from .store import DatasetItem, ComponentStore, read_item, write_item

__all__ = ["ComponentStore", "DatasetItem", "read_item", "write_item"]
