"""Exception (and warning) types of pympisr: one hierarchy, rooted at :class:`PympisrError`.

Every error pympisr raises for a problem with the user's input (files, models, options,
configuration, environment) is a :class:`PympisrError`; the command line prints such an
error as ``Error: <message>`` with exit status 1, and shows a traceback for anything
else (a bug). Where callers traditionally catch a builtin type, the class also derives
from it (e.g. :class:`InvalidInputError` is a ``ValueError``, :class:`ModelNotFoundError`
a ``LookupError``), so ``except ValueError`` keeps working.

::

    PympisrError
    ├── MDFError                      a file is not a readable/writable MDF (or item)
    ├── InvalidInputError (ValueError)  a bad argument, option or value from the user
    │   ├── UnknownTaskError            a restoration task pympisr does not know
    │   ├── ConfigError                 a training config (TOML) is invalid
    │   ├── DatasetError                a dataset folder or its dataset.json is invalid
    │   └── CheckpointError             a file is not a usable training checkpoint
    ├── OutputPathError (OSError)     an output file cannot be created where asked
    ├── ModelError                    problems with an ONNX restoration model
    │   ├── ManifestError (ValueError)           a model manifest is malformed
    │   ├── ModelNotFoundError (LookupError)
    │   │   └── UnknownArchitectureError (KeyError)  no network registered by that name
    │   ├── ModelIntegrityError (RuntimeError)   sha256 differs from manifest/sidecar
    │   ├── UntrustedModelError (RuntimeError)   nothing vouches for the model file
    │   └── ModelLoadError (ValueError)          not a loadable (pympisr) ONNX model
    ├── ExportCheckError (RuntimeError)  exported ONNX graph disagrees with PyTorch
    ├── JuliaUnavailableError (RuntimeError)  the Julia backend is not installed
    ├── ReconstructionError           a reconstruction step produced NaN/Inf
    ├── RestorationError (FloatingPointError)  a restoration produced non-finite values
    ├── OptionalDependencyError (ImportError)  an optional package (dask, ...) is missing
    ├── DataUnavailableError (FileNotFoundError)  a data set is neither cached nor made
    └── DataIntegrityError (ValueError)  a downloaded file's sha256 differs

    MDFWarning (UserWarning)          a tolerated quirk of an MDF file
    StandInDataWarning (UserWarning)  simulated stand-in files replace real data
    FitWarning (UserWarning)          a simulator fit is weakly determined by its data
"""

from __future__ import annotations

import os

__all__ = ["CheckpointError", "ConfigError", "DataIntegrityError", "DataUnavailableError",
           "DatasetError", "ExportCheckError", "FitWarning", "StandInDataWarning",
           "InvalidInputError", "JuliaUnavailableError", "MDFError", "MDFWarning",
           "ManifestError",
           "ModelError", "ModelIntegrityError", "ModelLoadError", "ModelNotFoundError",
           "OptionalDependencyError", "OutputPathError", "PympisrError", "ReconstructionError", "RestorationError",
           "UnknownArchitectureError", "UnknownTaskError", "UntrustedModelError"]


class PympisrError(Exception):
    """Base of the errors pympisr raises for problems with a user's input (files, models,
    environment), as opposed to bugs; the CLI prints their message without a traceback."""


class MDFError(PympisrError):
    """A file could not be read or written as an MDF (or pympisr HDF5) file.

    The message always names the file, the field (HDF5 path) and the problem::

        MDFError("/data/sm.mdf", "/measurement/data", "missing mandatory dataset")
        -> "/data/sm.mdf: /measurement/data: missing mandatory dataset"

    Attributes
    ----------
    path, field, problem:
        The three parts of the message; ``field`` may be ``"/"`` for whole-file problems.
    """

    def __init__(self, path: str | os.PathLike[str], field: str, problem: str) -> None:
        self.path = os.fspath(path)
        self.field = field
        self.problem = problem
        super().__init__(f"{self.path}: {field}: {problem}")


class MDFWarning(UserWarning):
    """A tolerated oddity of an MDF file (the data was still loaded)."""


class InvalidInputError(PympisrError, ValueError):
    """A bad argument, option value or setting given by the user (the message names it)."""


class UnknownTaskError(InvalidInputError):
    """A restoration task name that pympisr does not know."""


class ConfigError(InvalidInputError):
    """A training configuration is invalid; the message names the file and the key."""


class DatasetError(InvalidInputError):
    """A dataset folder (or its ``dataset.json``) is invalid or incompatible."""


class CheckpointError(InvalidInputError):
    """A file is not a usable pympisr training checkpoint."""


class OutputPathError(PympisrError, OSError):
    """An output file cannot be created at the requested path (the parent is a regular
    file, or a folder that is not writable, ...)."""


class ModelError(PympisrError):
    """Base of the problems with an ONNX restoration model."""


class ManifestError(ModelError, ValueError):
    """A model manifest (``manifest.json``) is not valid JSON or lacks required fields."""


class ModelNotFoundError(ModelError, LookupError):
    """No model of the requested name, or none for the requested task and dims."""


class UnknownArchitectureError(ModelNotFoundError, KeyError):
    """No network architecture is registered under the requested name
    (:func:`pympisr.models.registry.model_spec`)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ModelIntegrityError(ModelError, RuntimeError):
    """A model file's sha256 does not match its manifest entry or sha256 sidecar."""


class UntrustedModelError(ModelError, RuntimeError):
    """A model file is neither listed in a manifest nor vouched for by a sha256 sidecar,
    and the user did not ask to trust it."""


class ModelLoadError(ModelError, ValueError):
    """A model file is not a loadable ONNX graph, or not a pympisr model."""


class ExportCheckError(PympisrError, RuntimeError):
    """The exported ONNX graph disagrees with the PyTorch model."""


class JuliaUnavailableError(PympisrError, RuntimeError):
    """The Julia backend was requested but juliacall or MPIFiles/MPIReco is missing."""


class ReconstructionError(PympisrError):
    """A step of the image reconstruction produced values it cannot continue with
    (NaN/Inf from overflow, a transfer function near 0, NaN in the inputs, ...).

    The message names the step and the problem::

        ReconstructionError("transfer-function correction", "3 non-finite values ...")
        -> "reconstruction step 'transfer-function correction': 3 non-finite values ..."

    Attributes
    ----------
    step, problem:
        The two parts of the message.
    """

    def __init__(self, step: str, problem: str) -> None:
        self.step = step
        self.problem = problem
        super().__init__(f"reconstruction step {step!r}: {problem}")

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        return type(self), (self.step, self.problem)


class RestorationError(PympisrError, FloatingPointError):
    """A restoration produced values that cannot be written (NaN/Inf)."""


class OptionalDependencyError(PympisrError, ImportError):
    """An option needs a package that is not installed (the message names the option and
    the install command), e.g. ``pympisr dataset --scheduler`` without dask.distributed."""


class DataUnavailableError(PympisrError, FileNotFoundError):
    """A public data set (e.g. an OpenMPI file) is neither in the local cache nor
    downloadable, and simulated stand-in data were not allowed."""


class DataIntegrityError(PympisrError, ValueError):
    """A downloaded or cached data file's sha256 differs from the published one."""


class StandInDataWarning(UserWarning):
    """Simulated stand-in files are used in place of a public data set that is not in
    the cache (results are not those of the real measurement)."""


class FitWarning(UserWarning):
    """A simulator fit (:func:`pympisr.fitting.fit`) rests on components that are mostly
    noise: the geometry is weakly determined and the Jacobian-based uncertainties are not
    reliable."""
