"""Window cutting: windows cover the whole clip, are slices of the image, and a short clip wraps."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from genrify.dataset.windows import cut_windows, window_starts


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 3000), size=st.integers(1, 400), hop=st.integers(1, 400))
def test_window_starts_cover_the_whole_clip(n, size, hop):
    starts = window_starts(n, size=size, hop=hop)
    assert starts[0] == 0
    assert starts[-1] == max(n - size, 0)  # the tail is covered, never dropped
    assert (np.diff(starts) > 0).all() and (np.diff(starts) <= hop).all()
    expected = 1 if n <= size else math.ceil((n - size) / hop) + 1
    assert len(starts) == expected
    if n >= size and hop <= size:  # with hop > size the gaps between windows are by request
        covered = np.zeros(n, bool)
        for s in starts:
            covered[s: s + size] = True
        assert covered.all()


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 300), size=st.integers(1, 120), hop=st.integers(1, 120), f=st.integers(1, 5))
def test_cut_windows_are_slices_and_short_clips_wrap(n, size, hop, f):
    image = np.arange(f * n, dtype=np.float32).reshape(f, n)
    windows, starts = cut_windows(image, size=size, hop=hop)
    assert windows.shape == (len(starts), f, size)
    if n >= size:
        for w, s in zip(windows, starts):
            np.testing.assert_array_equal(w, image[:, s: s + size])
    else:
        assert len(windows) == 1
        np.testing.assert_array_equal(windows[0], image[:, np.arange(size) % n])  # repeated, not zero padded
