"""Library plotting never changes matplotlib's global backend (issue 9, item 14)."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest


@pytest.fixture
def svg_backend():
    """Select the non-interactive, non-Agg "svg" backend; restore the previous one."""
    previous = matplotlib.get_backend()
    matplotlib.use("svg", force=True)
    assert matplotlib.get_backend() == "svg"
    yield
    matplotlib.use(previous, force=True)


def _is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plotting_paths_keep_the_backend(svg_backend: None, tmp_path: Path) -> None:
    import pympisr.demo
    import pympisr.evaluation
    import pympisr.plotting
    import pympisr.reco.output
    import pympisr.training.trainer as trainer

    assert matplotlib.get_backend() == "svg"  # importing changes nothing

    image = np.random.default_rng(0).random((1, 3, 6, 5)).astype(np.float32)
    pympisr.reco.output.write_png(image, tmp_path / "reco.png")
    assert matplotlib.get_backend() == "svg"

    history = {"train": [[1, 0.5], [2, 0.3]], "val": [[2, 0.4]], "lr": []}
    trainer.plot_loss_curve(history, tmp_path / "loss.png", title="t", identity=0.45)
    assert matplotlib.get_backend() == "svg"

    from pympisr.datasets import DatasetItem

    comps = np.exp(1j * np.random.default_rng(1).random((4, 1, 6, 7))).astype(np.complex64)
    item = DatasetItem(components=comps, channel=np.zeros(4, np.int16),
                       frequency_index=np.arange(4), energy=np.ones(4), grid=(7, 6, 1),
                       fov=np.ones(3), center=np.zeros(3))
    pympisr.plotting.plot_strongest_components(item, tmp_path / "comps.png", components=3)
    assert matplotlib.get_backend() == "svg"
    pympisr.plotting.plot_central_slices({"a": image[0], "b": image[0, 0]},
                                         tmp_path / "slices.png", title="t")
    assert matplotlib.get_backend() == "svg"
    with pytest.raises(FileExistsError):
        pympisr.plotting.plot_central_slices({"a": image[0]}, tmp_path / "slices.png")
    with pytest.raises(ValueError, match="at least one"):
        pympisr.plotting.plot_central_slices({}, tmp_path / "none.png")

    result = pympisr.evaluation.EvaluationResult.__new__(pympisr.evaluation.EvaluationResult)
    clean = comps[0, 0]
    result.methods = ["m"]
    result.examples = [{"images": {pympisr.evaluation.NOISY: clean, "m": clean, "clean": clean},
                        "component": 0, "channel": 0, "frequency_index": 1}]
    result.figure_sigma = 0.1
    pympisr.evaluation.plot_examples(result, tmp_path / "examples.png")
    assert matplotlib.get_backend() == "svg"

    for name in ("reco.png", "loss.png", "comps.png", "slices.png", "examples.png"):
        assert _is_png(tmp_path / name), name


def test_demo_figure_keeps_the_backend(svg_backend: None, tmp_path: Path) -> None:
    from pympisr.demo import run_demo

    result = run_demo(tmp_path / "demo", grid=8, progress=False)
    assert matplotlib.get_backend() == "svg"
    assert _is_png(result.files["figure"])
