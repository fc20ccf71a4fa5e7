"""Effects the simulation prior does not model (pympisr.simulation.mismatch)."""

from __future__ import annotations

import numpy as np
import pytest

from pympisr.simulation.mismatch import simulate_nonlinear_gradient
from pympisr.simulation.parameters import reference_parameters
from pympisr.simulation.system_matrix import simulate_spectra, simulate_system_matrix

BINS = np.arange(1, 120)


@pytest.mark.parametrize("fluid", [True, False])
def test_selection_warp_by_a_scale_is_a_stronger_gradient(fluid):
    """A warp ``w(r) = s r`` is the linear field of the gradient ``s G`` (fluid
    particles' field-aligned anisotropy included)."""
    params = reference_parameters(2, fluid=fluid, grid=(9, 7, 1))
    warped = simulate_spectra(params, bins=BINS, selection_warp=lambda r: 1.08 * r)
    stronger = simulate_spectra(params.replace(gradient=1.08 * np.asarray(params.gradient)),
                                bins=BINS)
    np.testing.assert_allclose(warped, stronger, rtol=0, atol=1e-6 * np.abs(stronger).max())


def test_nonlinear_gradient_compresses_the_edges():
    params = reference_parameters(2, fluid=True, grid=(15, 15, 1))
    linear = simulate_system_matrix(params, frequencies=BINS)
    same = simulate_nonlinear_gradient(params, 0.0, frequencies=BINS)
    np.testing.assert_array_equal(same.data, linear.data)
    distorted = simulate_nonlinear_gradient(params, 0.1, frequencies=BINS)
    assert distorted.metadata["/_pympisr/simulation/gradient_nonlinearity"] == 0.1
    assert distorted.data.shape == linear.data.shape
    # near the isocentre the field is linear to first order; at the edges it is not
    diff = np.abs(distorted.data - linear.data)[:2].sum(axis=(0, 1))[0]  # (y, x)
    assert diff[7, 7] < 0.05 * diff.max()
    assert diff[:, [0, -1]].mean() > 5 * diff[6:9, 6:9].mean()
    with pytest.raises(ValueError, match="kappa"):
        simulate_nonlinear_gradient(params, float("nan"), frequencies=BINS)
