"""MSD_musicnn's forward pass in NumPy alone: the inference engine that does not import torch.

The same network and weights as :class:`genrify.models.musicnn.MusiCNN`, in
float32, for a process that only predicts a few songs: importing torch takes
longer than analysing a song (2.4–3.5 s on a 2-core AMD EPYC), while NumPy,
soundfile, soxr, PyAV and safetensors import in 0.3–0.4 s
(``benchmarks/bench_startup.py``). The arithmetic follows the torch port step by
step:

* timbral blocks (7×38 and 7×67 filters): the frequency-DFT convolution of
  :mod:`genrify.models.fftconv` (per-bin products over the 7 time taps, then the
  real inverse DFT at the valid positions, both matrix products), then max (or
  min, where the batch norm's scale is negative) over frequency;
* temporal blocks (128×1, 64×1, 32×1): matrix products of the unfolded input,
  a few dozen frames at a time so they stay in the CPU caches; the mid-end
  convolutions: one product of the unfolded input per patch;
* ReLU and the frozen batch norms as ``relu(x) · scale + shift`` after the max,
  which is exact (see the torch module's docstring);
* pooling, dense layers and the sigmoid as in the torch port.

Layout is time-major, ``(frames, channels)``, throughout; the patches of a song
run in parallel threads (:func:`_map_patches`). Results match the torch port to
float32 round-off (``tests/test_numpy_engine.py`` holds the tags to 1e-5 on real
songs). Only float32: the reduced precisions of
:mod:`genrify.models.quantize` need torch's kernels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genrify.errors import ModelFileError

#: MSD_musicnn's weights, shipped with genrify (both engines load them).
WEIGHTS_PATH = Path(__file__).resolve().parent / "weights" / "msd_musicnn.safetensors"
BN_EPS = 1e-3  # TensorFlow's default, as in the torch port
#: Output frames computed per matrix product (keeps the intermediate in the L2 cache).
TIMBRAL_CHUNK = 16
TEMPORAL_CHUNK = 32


def _scale_shift(state: dict[str, np.ndarray], prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """A frozen batch norm's affine map ``x · scale + shift`` (computed in float32, as torch does)."""
    scale = state[f"{prefix}.weight"] / np.sqrt(state[f"{prefix}.running_var"] + np.float32(BN_EPS))
    return scale.astype(np.float32), (state[f"{prefix}.bias"] - state[f"{prefix}.running_mean"] * scale).astype(
        np.float32)


def _tf_same_pad(kernel: int) -> tuple[int, int]:
    total = kernel - 1
    return total // 2, total - total // 2


@dataclass(frozen=True)
class _PooledBlock:
    """One front-end block: conv → max (min where ``scale < 0``) over frequency → + bias → ReLU → affine."""

    kernel_time: int
    time_pad: tuple[int, int]
    bias: np.ndarray  # (C,)
    scale: np.ndarray  # (C,)
    shift: np.ndarray  # (C,)
    # timbral: the DFT form; temporal: the (kh, C) matrix
    real_part: np.ndarray | None = None  # (n_bins, 2·kh, C)
    imag_part: np.ndarray | None = None  # (n_bins - 2, 2·kh, C)
    inverse: np.ndarray | None = None  # (F', 2·n_bins - 2)
    matrix: np.ndarray | None = None  # (kh, C)

    @property
    def mixed_signs(self) -> bool:
        return bool((self.scale < 0).any())

    def finish(self, zmax: np.ndarray, zmin: np.ndarray | None) -> np.ndarray:
        """``(T, C)`` maxima (and minima) over frequency → the block's output ``(T, C)``."""
        pooled = np.where(self.scale >= 0, zmax, zmin) if zmin is not None else zmax
        return np.maximum(pooled + self.bias, 0) * self.scale + self.shift


def dft_form(weight: np.ndarray, *, n_freq: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The frequency-DFT form of a single-input-channel conv weight ``(C, 1, kh, kw)`` for inputs
    ``n_freq`` bands wide (even), as :mod:`genrify.models.fftconv` explains it; both engines use it.

    Returns float32 ``real_part (n_bins, 2·kh, C)`` ([Re W; Im W] per bin → Re Y), ``imag_part
    (n_bins - 2, 2·kh, C)`` ([-Im W; Re W] per inner bin → Im Y) and ``inverse (F', 2·n_bins - 2)``
    (the real inverse DFT at the valid positions), computed in float64.
    """
    if weight.ndim != 4 or weight.shape[1] != 1:
        raise ValueError(f"expected a (C, 1, kh, kw) weight, got {tuple(weight.shape)}")
    if n_freq % 2:
        raise ValueError("n_freq must be even")
    kw = weight.shape[3]
    n_bins = n_freq // 2 + 1
    spectrum = np.fft.rfft(np.asarray(weight[:, 0], dtype=np.float64), n=n_freq, axis=-1)  # (C, kh, n_bins)
    re, im = spectrum.real.transpose(2, 1, 0), spectrum.imag.transpose(2, 1, 0)  # (n_bins, kh, C)
    # conj(W): Re Y = Xr·Wr + Xi·Wi, Im Y = Xi·Wr − Xr·Wi. The first and last bins of a
    # real sequence have no imaginary part, so Im Y is kept for the inner bins only.
    real_part = np.concatenate([re, im], axis=1)
    imag_part = np.concatenate([-im, re], axis=1)[1:-1]
    f = np.arange(n_freq - kw + 1, dtype=np.float64)[:, None]
    k = np.arange(n_bins, dtype=np.float64)[None, :]
    weight_k = np.full((1, n_bins), 2.0)
    weight_k[0, 0] = weight_k[0, -1] = 1.0
    angle = 2 * np.pi * k * f / n_freq
    inverse = np.concatenate([weight_k * np.cos(angle), -2.0 * np.sin(angle[:, 1:-1])], axis=1) / n_freq
    return tuple(np.ascontiguousarray(a, dtype=np.float32) for a in (real_part, imag_part, inverse))


def _dft_block(weight: np.ndarray, bias, scale, shift, *, n_freq: int) -> _PooledBlock:
    """The timbral block of a ``(C, 1, kh, kw)`` weight in its frequency-DFT form."""
    real_part, imag_part, inverse = dft_form(weight, n_freq=n_freq)
    return _PooledBlock(kernel_time=weight.shape[2], time_pad=(3, 3), bias=bias, scale=scale, shift=shift,
                        real_part=real_part, imag_part=imag_part, inverse=inverse)


def _timbral(block: _PooledBlock, x: np.ndarray) -> np.ndarray:
    """A timbral block on one normalised patch ``x (T, F)`` → ``(T, C)``."""
    kh = block.kernel_time
    xp = np.pad(x, (block.time_pad, (0, 0)))
    n_out = xp.shape[0] - kh + 1
    n_bins, _, channels = block.real_part.shape
    spectrum = np.fft.rfft(xp, axis=-1)  # (T + kh - 1, n_bins), complex64
    windows = np.lib.stride_tricks.sliding_window_view
    taps = np.concatenate([windows(spectrum.real, kh, axis=0), windows(spectrum.imag, kh, axis=0)], axis=-1)
    taps = np.ascontiguousarray(taps.transpose(1, 0, 2), dtype=np.float32)  # (n_bins, T, 2kh)
    need_min = block.mixed_signs
    zmax = np.empty((n_out, channels), np.float32)
    zmin = np.empty((n_out, channels), np.float32) if need_min else None
    # Buffers reused by every chunk: fresh megabyte-sized arrays would cost page faults each time.
    y = np.empty((2 * n_bins - 2, TIMBRAL_CHUNK, channels), np.float32)
    z = np.empty((block.inverse.shape[0], TIMBRAL_CHUNK * channels), np.float32)
    for t0 in range(0, n_out, TIMBRAL_CHUNK):
        t = min(TIMBRAL_CHUNK, n_out - t0)
        yt = y[:, :t] if t == TIMBRAL_CHUNK else np.empty((2 * n_bins - 2, t, channels), np.float32)
        np.matmul(taps[:, t0 : t0 + t], block.real_part, out=yt[:n_bins])
        np.matmul(taps[1:-1, t0 : t0 + t], block.imag_part, out=yt[n_bins:])
        zt = np.matmul(block.inverse, yt.reshape(2 * n_bins - 2, -1), out=z[:, : t * channels])
        zt = zt.reshape(-1, t, channels)  # (F', t, C)
        zt.max(axis=0, out=zmax[t0 : t0 + t])
        if zmin is not None:
            zt.min(axis=0, out=zmin[t0 : t0 + t])
    return block.finish(zmax, zmin)


def _temporal(block: _PooledBlock, x: np.ndarray) -> np.ndarray:
    """A temporal block (kernel ``kh × 1``) on one normalised patch ``x (T, F)`` → ``(T, C)``."""
    kh = block.kernel_time
    xp = np.pad(x, (block.time_pad, (0, 0))).T  # (F, T + kh - 1)
    n_freq, n_out = xp.shape[0], xp.shape[1] - kh + 1
    # Frequency first, so the max over frequency runs over whole (t, C) slabs.
    cols = np.lib.stride_tricks.sliding_window_view(xp, kh, axis=1)  # (F, T, kh), a view
    need_min = block.mixed_signs
    channels = block.matrix.shape[1]
    zmax = np.empty((n_out, channels), np.float32)
    zmin = np.empty_like(zmax) if need_min else None
    unfolded = np.empty((n_freq, TEMPORAL_CHUNK, kh), np.float32)
    z = np.empty((n_freq * TEMPORAL_CHUNK, channels), np.float32)
    for t0 in range(0, n_out, TEMPORAL_CHUNK):
        t = min(TEMPORAL_CHUNK, n_out - t0)
        u = unfolded[:, :t] if t == TEMPORAL_CHUNK else np.empty((n_freq, t, kh), np.float32)
        u[...] = cols[:, t0 : t0 + t]
        zt = np.matmul(u.reshape(n_freq * t, kh), block.matrix, out=z[: n_freq * t]).reshape(n_freq, t, channels)
        zt.max(axis=0, out=zmax[t0 : t0 + t])
        if zmin is not None:
            zt.min(axis=0, out=zmin[t0 : t0 + t])
    return block.finish(zmax, zmin)


@dataclass(frozen=True)
class _Midend:
    """Conv1d k=7 (zero pad 3+3) → ReLU → batch norm, time-major: ``(T, C_in) → (T, 64)``."""

    matrix: np.ndarray  # (C_in · 7, 64), rows ordered (channel, tap) as the unfolded input
    bias: np.ndarray
    scale: np.ndarray
    shift: np.ndarray

    def __call__(self, x: np.ndarray) -> np.ndarray:
        xp = np.pad(x, ((3, 3), (0, 0)))
        cols = np.lib.stride_tricks.sliding_window_view(xp, 7, axis=0)  # (T, C_in, 7)
        z = cols.reshape(x.shape[0], -1) @ self.matrix + self.bias
        return np.maximum(z, 0) * self.scale + self.shift


class NumpyMusiCNN:
    """musicnn's network (:class:`~genrify.models.musicnn.MusiCNN`) evaluated with NumPy, float32.

    Built from the torch port's ``state_dict`` as NumPy arrays (the safetensors
    weights file holds exactly that); ``tags`` lists the output tags.
    """

    precision = "float32"

    def __init__(self, state: dict[str, np.ndarray], *, tags: list[str], n_mels: int = 96):
        state = {k: np.asarray(v, dtype=np.float32) for k, v in state.items()}
        self.tags = list(tags)
        self.input_scale, self.input_shift = (float(v[0]) for v in _scale_shift(state, "input_bn"))
        self.timbral = [
            _dft_block(state[f"timbral.{i}.conv.weight"], state[f"timbral.{i}.conv.bias"],
                       *_scale_shift(state, f"timbral.{i}.bn"), n_freq=n_mels)
            for i in range(2)
        ]
        self.temporal = []
        for i in range(3):
            w = state[f"temporal.{i}.conv.weight"]  # (C, 1, kh, 1)
            scale, shift = _scale_shift(state, f"temporal.{i}.bn")
            self.temporal.append(_PooledBlock(kernel_time=w.shape[2], time_pad=_tf_same_pad(w.shape[2]),
                                              bias=state[f"temporal.{i}.conv.bias"], scale=scale, shift=shift,
                                              matrix=np.ascontiguousarray(w[:, 0, :, 0].T)))
        self.midend = []
        for i in range(3):
            w = state[f"midend.{i}.conv.weight"]  # (64, C_in, 7)
            self.midend.append(_Midend(np.ascontiguousarray(w.reshape(w.shape[0], -1).T),
                                       state[f"midend.{i}.conv.bias"], *_scale_shift(state, f"midend.{i}.bn")))
        self.pool_scale, self.pool_shift = _scale_shift(state, "pool_bn")
        self.dense_w, self.dense_b = np.ascontiguousarray(state["dense.weight"].T), state["dense.bias"]
        self.dense_scale, self.dense_shift = _scale_shift(state, "dense_bn")
        self.classifier_w = np.ascontiguousarray(state["classifier.weight"].T)
        self.classifier_b = state["classifier.bias"]

    def _pooled(self, patch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One patch ``(T, 96)`` → the mid-end features max- and mean-pooled over time, 2 × ``(753,)``."""
        h = patch * np.float32(self.input_scale) + np.float32(self.input_shift)
        front = np.concatenate([_timbral(b, h) for b in self.timbral] + [_temporal(b, h) for b in self.temporal],
                               axis=1)  # (T, 561)
        c1 = self.midend[0](front)
        c2 = self.midend[1](c1) + c1
        c3 = self.midend[2](c2) + c2
        feats = np.concatenate([front, c1, c2, c3], axis=1)  # (T, 753)
        return feats.max(axis=0), feats.mean(axis=0)

    def forward_features(self, patches: np.ndarray) -> dict[str, np.ndarray]:
        """``logits``, ``taggram``, ``penultimate``, ``max_pool`` and ``mean_pool`` of log-mel
        patches ``(B, T, 96)``, as :meth:`MusiCNN.forward_features` names them."""
        patches = np.asarray(patches, dtype=np.float32)
        if patches.ndim != 3:
            raise ValueError(f"expected log-mel patches of shape (batch, frames, mels), got {patches.shape}")
        per_patch = _map_patches(self._pooled, patches)
        max_pool, mean_pool = np.stack([p[0] for p in per_patch]), np.stack([p[1] for p in per_patch])
        pooled = np.concatenate([max_pool, mean_pool], axis=1) * self.pool_scale + self.pool_shift
        penultimate = np.maximum(pooled @ self.dense_w + self.dense_b, 0) * self.dense_scale + self.dense_shift
        logits = penultimate @ self.classifier_w + self.classifier_b
        return {"logits": logits, "taggram": (1.0 / (1.0 + np.exp(-logits))).astype(np.float32),
                "penultimate": penultimate, "max_pool": max_pool, "mean_pool": mean_pool}


_CONTROLLER: list = []  # threadpoolctl's view of the loaded BLAS library, made once


def _map_patches(fn, patches: np.ndarray) -> list:
    """``[fn(p) for p in patches]``, the patches spread over as many Python threads as the BLAS library
    may use (:func:`genrify.predict.threads.set_threads` sets it), each product single-threaded meanwhile.

    One patch's products are small (a few dozen frames at a time): split across cores they spend
    much of their time synchronising, while whole patches in parallel threads (NumPy releases the
    GIL in its products, FFTs and element-wise loops) keep every core busy. Each patch's features
    come out the same on any number of threads. The limit is process-wide: meant for one analysis
    at a time (a server running several shares the cores out with one thread each instead).
    """
    if not _CONTROLLER:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER.append(ThreadpoolController())
    blas = _CONTROLLER[0].select(user_api="blas")
    threads = min(len(patches), max((lib.num_threads for lib in blas.lib_controllers), default=1))
    if threads <= 1:
        return [fn(p) for p in patches]
    from concurrent.futures import ThreadPoolExecutor

    with blas.limit(limits=1), ThreadPoolExecutor(threads) as pool:
        return list(pool.map(fn, patches))


def load_numpy_musicnn(*, weights: str | Path | None = None) -> NumpyMusiCNN:
    """:class:`NumpyMusiCNN` with musicnn's pretrained weights (default: MSD_musicnn shipped with genrify).

    Raises:
        ModelFileError: the file is missing, not safetensors, lacks tag names or does not fit.
    """
    from safetensors import SafetensorError, safe_open
    from safetensors.numpy import load_file

    path = Path(weights) if weights is not None else WEIGHTS_PATH
    try:
        with safe_open(str(path), framework="np") as f:
            tags = json.loads((f.metadata() or {})["tags"])
        state = load_file(str(path))
    except FileNotFoundError:
        raise ModelFileError(f"{path}: musicnn weights not found") from None
    except (OSError, KeyError, ValueError, SafetensorError) as exc:
        raise ModelFileError(f"{path}: not a musicnn weights file ({exc})") from None
    try:
        return NumpyMusiCNN(state, tags=tags)
    except (KeyError, ValueError, IndexError) as exc:
        raise ModelFileError(f"{path}: weights do not fit the musicnn architecture ({exc})") from None
