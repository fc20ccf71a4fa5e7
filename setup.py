"""Package layout that pyproject.toml cannot express: the models folder onnx_models/
stays at the repository root (the Julia tests and scripts use it there) and is
installed as the package data ``pympisr.onnx_models``."""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["pympisr", "pympisr.*"]), "pympisr.onnx_models"],
      package_dir={"pympisr.onnx_models": "onnx_models"})
