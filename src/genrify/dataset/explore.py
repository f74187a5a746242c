"""A first look at a dataset: its feature images projected to two dimensions."""

from __future__ import annotations

import numpy as np


def standardised_pca(images: list[np.ndarray], *, max_frames: int) -> tuple[np.ndarray, int]:
    """PCA to 2-D of feature images ``(n_features, frames)`` cut to a common length (at most
    ``max_frames``), each pixel standardised over the images. Returns ``(points (n, 2), frames used)``."""
    from sklearn.decomposition import PCA

    n = min(min(im.shape[1] for im in images), max_frames)
    X = np.stack([np.asarray(im[:, :n]).ravel() for im in images]).astype(np.float64)
    X = (X - X.mean(0)) / (X.std(0) + 1e-9)
    return PCA(n_components=2, random_state=0).fit_transform(X), n
