"""Export of trained networks to self-contained ONNX graphs (DESIGN section 8)."""

from __future__ import annotations

from .onnx import (OPSET, EndToEnd, ExportCheckError, ExportResult, check_onnx_against_torch,
                   export_checkpoint, export_model, golden_input, golden_paths, read_metadata)

__all__ = ["OPSET", "EndToEnd", "ExportCheckError", "ExportResult", "check_onnx_against_torch",
           "export_checkpoint", "export_model", "golden_input", "golden_paths", "read_metadata"]
