"""Frequency selection: MPIFiles' filterFrequencies rule and MPIReco's row order."""

from __future__ import annotations

import numpy as np
import pytest

from pympisr import SystemMatrix
from pympisr.reco import select_frequencies

FREQS = np.array([0.0, 10e3, 20e3, 30e3, 40e3, 50e3])
#                 k=0  k=1   k=2   k=3   k=4   k=5
SNR = np.array([[1.0, 9.0, 5.0, 4.99, 30.0, 6.0],      # channel 0
                [7.0, 2.0, 5.0, np.nan, 8.0, 100.0],   # channel 1
                [50.0, 50.0, 50.0, 50.0, 50.0, 50.0]])  # channel 2


def _sm() -> SystemMatrix:
    data = np.zeros((3, 6, 1, 2, 2), dtype=np.complex64)
    return SystemMatrix(data=data, frequencies=FREQS, grid=(2, 2, 1), fov=(1e-2, 1e-2, 1e-3),
                        snr=SNR, frequency_indices=np.arange(6))


def test_hand_computed_selection() -> None:
    # SNR >= 5 (inclusive), 15 kHz <= f <= 50 kHz, channels 1 and 0 (given unsorted)
    rows = select_frequencies(SNR, FREQS, snr_thresh=5, min_freq=15e3, max_freq=50e3,
                              rec_channels=[1, 0])
    # channel 0: k=2 (5.0), k=3 dropped (4.99), k=4 (30), k=5 (6); k=1 is below 15 kHz
    # channel 1: k=2 (5.0), k=3 NaN dropped, k=4 (8), k=5 (100)
    expected = [[0, 2], [0, 4], [0, 5], [1, 2], [1, 4], [1, 5]]
    assert rows.tolist() == expected
    assert rows.dtype == np.int64


def test_band_limits_are_inclusive_and_no_snr_filter_by_default() -> None:
    rows = select_frequencies(SNR, FREQS, min_freq=10e3, max_freq=30e3, rec_channels=2)
    assert rows.tolist() == [[2, 1], [2, 2], [2, 3]]
    everything = select_frequencies(SNR, FREQS)
    assert everything.shape == (18, 2)
    # MPIReco order: all frequencies of channel 0, then channel 1, then channel 2
    assert everything[:, 0].tolist() == [0] * 6 + [1] * 6 + [2] * 6
    assert everything[:, 1].tolist() == list(range(6)) * 3


def test_nonpositive_threshold_ignores_snr() -> None:
    for thresh in (0, -1):
        rows = select_frequencies(SNR, FREQS, snr_thresh=thresh, rec_channels=[1])
        assert rows[:, 1].tolist() == list(range(6))


def test_system_matrix_input_equals_array_input() -> None:
    a = select_frequencies(_sm(), snr_thresh=6, min_freq=1.0)
    b = select_frequencies(SNR, FREQS, snr_thresh=6, min_freq=1.0)
    assert np.array_equal(a, b)
    assert a.tolist() == [[0, 1], [0, 4], [0, 5], [1, 4], [1, 5], [2, 1], [2, 2], [2, 3],
                          [2, 4], [2, 5]]


def test_rows_index_the_matrix() -> None:
    sm = _sm()
    sm.data[:] = np.arange(18).reshape(3, 6, 1, 1, 1)
    rows = select_frequencies(sm, snr_thresh=30)
    assert np.array_equal(sm.matrix(rows)[:, 0].real, 6 * rows[:, 0] + rows[:, 1])


def test_empty_selection_and_errors() -> None:
    assert select_frequencies(SNR, FREQS, snr_thresh=1000).shape == (0, 2)
    with pytest.raises(ValueError, match="SNR"):
        select_frequencies(None, FREQS, snr_thresh=3, num_channels=2)
    assert select_frequencies(None, FREQS, num_channels=2).shape == (12, 2)
    with pytest.raises(ValueError, match="0-based"):
        select_frequencies(SNR, FREQS, rec_channels=[3])
    with pytest.raises(ValueError, match="frequencies"):
        select_frequencies(SNR)
    with pytest.raises(ValueError, match="snr must be"):
        select_frequencies(SNR[:, :4], FREQS)
