"""Restoration of system matrices with exported ONNX models (onnxruntime, CPU)."""

from __future__ import annotations

from .detect import DetectionResult, detect_corrupted  # noqa: F401  (public API)
from .restore import default_output_path, restore, restore_system_matrix
from .runtime import OnnxRestorer

__all__ = ["OnnxRestorer", "default_output_path", "restore", "restore_system_matrix"]
