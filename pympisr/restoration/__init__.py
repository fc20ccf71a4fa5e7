"""Restoration of system matrices with exported ONNX models (onnxruntime, CPU)."""

from __future__ import annotations

from .detect import DetectionResult, detect_corrupted
from .restore import default_output_path, restore, restore_system_matrix
from .runtime import OnnxRestorer

__all__ = ["DetectionResult", "OnnxRestorer", "default_output_path", "detect_corrupted",
           "restore", "restore_system_matrix"]
