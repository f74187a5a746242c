"""MSD_musicnn: the pretrained music tagger of Pons & Serra (2019), ported to PyTorch.

Follows ``build_musicnn`` of musicnn 0.1.0 (``musicnn/models.py``, ISC licence)
with the weights converted from its Million Song Dataset checkpoint (50 tags);
see ``models/weights/NOTICE-musicnn.txt``. The input is a batch of log-mel
patches ``(batch, 187, 96)`` from :mod:`genrify.features.musicnn`.

Architecture (``B`` batch, ``T`` = 187 frames, ``F`` = 96 mel bands)::

    input (B, T, F) → batch norm (one channel)
    front end  timbral  conv 7×38 and 7×67 (204 filters each), time padded 3+3,
               frequency 'valid'            → ReLU → BN → max over frequency
               temporal conv 128×1, 64×1, 32×1 (51 filters each), TF 'same' in
               time (asymmetric: 63+64, 31+32, 15+16) → ReLU → BN → max over freq
               → concat (B, 561, T)
    mid end    3 × [conv1d k=7 pad 3+3, 64 filters → ReLU → BN], the 2nd and
               3rd with a residual connection       → each (B, 64, T)
               dense connection: concat(front, c1, c2, c3) → (B, 753, T)
    back end   max and mean over time → (B, 1506) → BN → dense 200 → ReLU → BN
               (the "penultimate" features) → dense 50 (logits)

Batch norms use the checkpoint's moving statistics with TensorFlow's epsilon
0.001 and are frozen (this is an inference port). Dropout is the identity at
inference and is omitted.

Speed: :meth:`MusiCNN.forward` evaluates each conv → ReLU → BN → max-over-
frequency block as conv → max/min over frequency → ReLU → affine, which is
exact (ReLU and a per-channel affine map are monotonic, so they commute with the
max once the sign of the BN scale is taken into account) and avoids three
passes over the largest tensors; it runs one patch and a few dozen frames at a
time so the conv outputs stay in the CPU caches. The float32 timbral convs go
through a DFT along frequency (:mod:`genrify.models.fftconv`): the same
convolution in fewer multiply-adds; the reduced precisions below use matrix
products of the unfolded input. ``load_musicnn(fast=True)`` (or
:func:`quantize_musicnn`) computes those products in bfloat16 for the fast
mode, usually paired with ``FAST_PATCHES`` spread patches per song;
``precision="int8"`` computes them in int8. Either is used only where
:func:`genrify.models.quantize.machine_precision` measured it faster than
float32 on this machine (bfloat16 is emulated, and slower, on most CPUs).

The MTT_musicnn checkpoint (MagnaTagATune, 50 other tags) has the same
architecture and sizes: ``load_musicnn(weights=...)`` loads it too, and
:mod:`genrify.models.backbones` names all four of musicnn's pretrained taggers.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from genrify.config import MUSICNN_FAST_WINDOWS, MUSICNN_FEATURES
from genrify.errors import ModelFileError
from genrify.models.fftconv import FrequencyDFTWeights, conv_max_min_over_frequency, prepare_weights
from genrify.models.musicnn_numpy import WEIGHTS_PATH  # the default weights (one definition for both engines)

N_MELS = MUSICNN_FEATURES.n_mels
BN_EPS = 1e-3  # tf.compat.v1.layers.batch_normalization's default
#: Patches per song in the fast mode (spread over the song, see
#: genrify.features.musicnn.patch_starts).
FAST_PATCHES = MUSICNN_FAST_WINDOWS


class FrozenBatchNorm(nn.Module):
    """Batch norm with fixed statistics over dimension 1: ``y = (x - mean) / sqrt(var + eps) * w + b``.

    Buffers ``weight``, ``bias``, ``running_mean``, ``running_var`` of shape
    ``(num_features,)``; input ``(batch, num_features, ...)``.
    """

    def __init__(self, num_features: int, eps: float = BN_EPS):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def scale_shift(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The equivalent affine map ``y = x * scale + shift``, each ``(num_features,)``."""
        scale = self.weight * torch.rsqrt(self.running_var + self.eps)
        return scale, self.bias - self.running_mean * scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale, shift = self.scale_shift()
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return x * scale.view(shape) + shift.view(shape)


class _FrequencyMaxBlock(nn.Module):
    """Conv2d over (time, frequency) → ReLU → BN → max over frequency: ``(B, 1, T, F) → (B, C, T)``.

    ``time_pad`` is ``(before, after)`` zero padding on the time axis; the
    frequency axis is never padded ('valid', or a kernel width of 1).

    ``matmul`` evaluates the conv as one matrix product of the unfolded input
    (faster than oneDNN's direct conv for the wide, single-channel timbral
    kernels); ``precision`` ("float32", "bfloat16" or "int8", see
    :mod:`genrify.models.quantize`) is the precision of that product, and a
    reduced one always takes the matrix-product form. ``fft`` computes the float32 conv through a
    frequency-axis DFT instead (:mod:`genrify.models.fftconv`: 2.2× and 3.3× fewer multiply-adds for
    the 38- and 67-band timbral kernels). ``time_chunk`` output frames of one patch are
    computed at a time so the conv output stays in the CPU caches: for a whole
    batch (B × 204 × 187 × 59 floats) it does not, and runs at a third of the
    speed. Neither choice changes the arithmetic beyond float32 round-off.
    """

    def __init__(self, filters: int, kernel: tuple[int, int], time_pad: tuple[int, int], *, matmul: bool = False,
                 fft: bool = False, time_chunk: int = 48):
        super().__init__()
        self.time_pad = time_pad
        self.matmul = matmul
        self.fft = fft
        self.precision = "float32"
        self.time_chunk = time_chunk
        self._packed: tuple[int, object] | None = None  # (weight version, int8 weight packed for it)
        self._dft: tuple[tuple, FrequencyDFTWeights] | None = None  # ((weight version, bands), DFT form)
        self.conv = nn.Conv2d(1, filters, kernel)
        self.bn = FrozenBatchNorm(filters)

    def _weight(self, n_freq: int):
        """The conv weight in the form the forward pass multiplies by: ``None`` (direct conv),
        a ``(kh·kw, C)`` float32/bfloat16 matrix, an int8 packing of it, or its DFT form for
        ``n_freq``-band inputs."""
        if self.precision == "int8":
            # Packing quantises the weights (about 1 ms); keep it while the weights are unchanged.
            version = self.conv.weight._version
            if self._packed is None or self._packed[0] != version:
                from genrify.models.quantize import pack_int8

                self._packed = (version, pack_int8(self.conv.weight.reshape(self.conv.out_channels, -1).t()))
            return self._packed[1]
        if self.fft and self.precision == "float32" and n_freq % 2 == 0:
            key = (self.conv.weight._version, n_freq)
            if self._dft is None or self._dft[0] != key:
                self._dft = (key, prepare_weights(self.conv.weight, n_freq=n_freq))
            return self._dft[1]
        if not self.matmul and self.precision == "float32":
            return None
        dtype = torch.bfloat16 if self.precision == "bfloat16" else torch.float32
        # (kh·kw, C); rebuilt per call (cheap) so it never goes stale
        return self.conv.weight.reshape(self.conv.out_channels, -1).t().contiguous().to(dtype)

    def _pooled_conv(self, xs: torch.Tensor, weight, need_min: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Conv of one padded chunk ``(1, 1, t + kh - 1, F)``, then max (and min, when ``need_min``) over
        frequency: 2 × ``(1, C, t)``."""
        if weight is None:
            z = self.conv(xs)  # (1, C, t, F')
            return z.amax(dim=3), (z.amin(dim=3) if need_min else None)
        kh, kw = self.conv.kernel_size
        if isinstance(weight, torch.Tensor):
            cols = xs[0, 0].to(weight.dtype).unfold(0, kh, 1).unfold(1, kw, 1)  # (t, F', kh, kw)
            t, f = cols.shape[:2]
            z = (cols.reshape(t * f, kh * kw) @ weight).view(t, f, -1)  # (t, F', C)
        else:
            from genrify.models.quantize import int8_matmul

            cols = xs[0, 0].unfold(0, kh, 1).unfold(1, kw, 1)
            t, f = cols.shape[:2]
            z = int8_matmul(cols.reshape(t * f, kh * kw), weight).view(t, f, -1)
        # The bias is constant over frequency: add it after pooling, in float32.
        bias = self.conv.bias.view(1, -1, 1)
        zmin = z.amin(dim=1).t().float().unsqueeze(0) + bias if need_min else None
        return z.amax(dim=1).t().float().unsqueeze(0) + bias, zmin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xp = F.pad(x, (0, 0, *self.time_pad))
        kh = self.conv.kernel_size[0]
        n_out = xp.shape[2] - kh + 1
        scale, shift = self.bn.scale_shift()
        positive = (scale >= 0).view(1, -1, 1)
        mixed_signs = not bool(positive.all())
        weight = self._weight(x.shape[3])
        pooled = xp.new_empty((x.shape[0], self.conv.out_channels, n_out))
        for b in range(x.shape[0]):
            if isinstance(weight, FrequencyDFTWeights):
                zmax, zmin = conv_max_min_over_frequency(xp[b, 0], weight, time_chunk=self.time_chunk,
                                                         need_min=mixed_signs)
                bias = self.conv.bias.view(-1, 1)
                # max_f(a·relu(z)+b) = a·relu(max_f z)+b when a ≥ 0, a·relu(min_f z)+b when a < 0.
                pooled[b] = (torch.where(positive[0], zmax, zmin) if mixed_signs else zmax) + bias
                continue
            for t0 in range(0, n_out, self.time_chunk):
                t1 = min(t0 + self.time_chunk, n_out)
                zmax, zmin = self._pooled_conv(xp[b : b + 1, :, t0 : t1 + kh - 1], weight, mixed_signs)
                pooled[b : b + 1, :, t0:t1] = torch.where(positive, zmax, zmin) if mixed_signs else zmax
        return torch.relu(pooled) * scale.view(1, -1, 1) + shift.view(1, -1, 1)

    def reference_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The literal order of operations (conv → ReLU → BN → max); for checks."""
        z = torch.relu(self.conv(F.pad(x, (0, 0, *self.time_pad))))
        return self.bn(z).amax(dim=3)


class _MidendLayer(nn.Module):
    """Conv1d k=7 (zero pad 3+3) → ReLU → BN: ``(B, C_in, T) → (B, 64, T)``."""

    def __init__(self, in_channels: int, filters: int):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, filters, 7, padding=3)
        self.bn = FrozenBatchNorm(filters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(torch.relu(self.conv(x)))


def _tf_same_pad(kernel: int) -> tuple[int, int]:
    """TensorFlow 'same' padding at stride 1: the odd extra zero goes after."""
    total = kernel - 1
    return total // 2, total - total // 2


class MusiCNN(nn.Module):
    """The MSD_musicnn network (see the module docstring).

    ``forward(x)`` maps log-mel patches ``(batch, 187, 96)`` to tag logits
    ``(batch, 50)``. Other patch lengths work too (the network pools over time),
    but the model was trained on 187 frames (3 s).
    """

    def __init__(self, *, n_mels: int = N_MELS, n_tags: int = 50, midend_filters: int = 64, dense_units: int = 200,
                 tags: list[str] | None = None):
        super().__init__()
        self.tags = list(tags) if tags is not None else [f"tag{i}" for i in range(n_tags)]
        self.input_bn = FrozenBatchNorm(1)
        timbral_filters, temporal_filters = int(1.6 * 128), int(1.6 * 32)  # 204, 51
        self.timbral = nn.ModuleList(
            _FrequencyMaxBlock(timbral_filters, (7, int(frac * n_mels)), (3, 3), matmul=True, fft=True,
                               time_chunk=16)
            for frac in (0.4, 0.7)
        )
        self.temporal = nn.ModuleList(
            _FrequencyMaxBlock(temporal_filters, (k, 1), _tf_same_pad(k)) for k in (128, 64, 32)
        )
        front = 2 * timbral_filters + 3 * temporal_filters  # 561
        self.midend = nn.ModuleList(
            [_MidendLayer(front, midend_filters), _MidendLayer(midend_filters, midend_filters),
             _MidendLayer(midend_filters, midend_filters)]
        )
        self.n_pooled = front + 3 * midend_filters  # 753
        self.pool_bn = FrozenBatchNorm(2 * self.n_pooled)
        self.dense = nn.Linear(2 * self.n_pooled, dense_units)
        self.dense_bn = FrozenBatchNorm(dense_units)
        self.classifier = nn.Linear(dense_units, n_tags)

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every named output for a batch of patches ``x`` of shape ``(B, T, 96)``.

        Returns a dict with ``logits`` (B, 50), ``taggram`` = sigmoid(logits)
        (B, 50), ``penultimate`` (B, 200: the 200-unit dense layer after its
        ReLU and batch norm), ``max_pool`` and ``mean_pool`` (B, 753: the
        mid-end features pooled over time), ``timbral`` (B, T, 408) and
        ``temporal`` (B, T, 153) (front-end outputs, musicnn's layout).
        """
        if x.dim() != 3:
            raise ValueError(f"expected log-mel patches of shape (batch, frames, mels), got {tuple(x.shape)}")
        h = self.input_bn(x.unsqueeze(1))  # (B, 1, T, F)
        timbral = [block(h) for block in self.timbral]  # 2 × (B, 204, T)
        temporal = [block(h) for block in self.temporal]  # 3 × (B, 51, T)
        front = torch.cat(timbral + temporal, dim=1)  # (B, 561, T)
        c1 = self.midend[0](front)
        c2 = self.midend[1](c1) + c1
        c3 = self.midend[2](c2) + c2
        feats = torch.cat([front, c1, c2, c3], dim=1)  # (B, 753, T)
        max_pool, mean_pool = feats.amax(dim=2), feats.mean(dim=2)
        pooled = self.pool_bn(torch.cat([max_pool, mean_pool], dim=1))  # (B, 1506)
        penultimate = self.dense_bn(torch.relu(self.dense(pooled)))  # (B, 200)
        logits = self.classifier(penultimate)
        return {
            "logits": logits,
            "taggram": torch.sigmoid(logits),
            "penultimate": penultimate,
            "max_pool": max_pool,
            "mean_pool": mean_pool,
            "timbral": torch.cat(timbral, dim=1).transpose(1, 2),
            "temporal": torch.cat(temporal, dim=1).transpose(1, 2),
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Tag logits ``(B, 50)`` for log-mel patches ``x`` of shape ``(B, T, 96)``."""
        return self.forward_features(x)["logits"]

    def set_precision(self, precision: str) -> "MusiCNN":
        """Compute the two timbral convs (most of the work) in ``precision``, unconditionally.

        ``"float32"`` (exact), ``"bfloat16"`` or ``"int8"`` (see
        :mod:`genrify.models.quantize`). This does not ask whether the machine
        runs it faster: the loaders use :meth:`use_precision`, which does; this
        is for measuring and testing. Returns ``self``.
        """
        from genrify.models.quantize import PRECISIONS

        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
        for block in self.timbral:
            block.precision = precision
        return self

    def use_precision(self, requested: str) -> "MusiCNN":
        """Use ``requested`` ("float32", "bfloat16", "int8" or "fastest") where this machine runs it faster.

        The machine's answer is measured once and cached
        (:func:`genrify.models.quantize.machine_precision`); where the reduced
        precision is not faster, the model stays float32. Returns ``self``.
        """
        from genrify.models.quantize import machine_precision, resolve_precision

        decision = machine_precision() if requested != "float32" else None
        return self.set_precision(resolve_precision(requested, decision) if decision else "float32")

    def use_bfloat16(self, enabled: bool = True) -> "MusiCNN":
        """:meth:`use_precision` ``("bfloat16")`` (or float32 when not ``enabled``): the fast mode's arithmetic.

        About 1.7× faster overall on CPUs with native bfloat16; tag
        probabilities move by up to about 0.01 (see tests/test_musicnn.py).
        Where this machine does not run bfloat16 faster (emulated, or no
        AVX512-BF16/AMX), the model stays float32. Returns ``self``.
        """
        return self.use_precision("bfloat16" if enabled else "float32")

    @property
    def precision(self) -> str:
        """The precision the timbral convs run in: "float32", "bfloat16" or "int8"."""
        return self.timbral[0].precision

    @property
    def uses_bfloat16(self) -> bool:
        return self.precision == "bfloat16"


def quantize_musicnn(model: MusiCNN, *, precision: str = "bfloat16") -> MusiCNN:
    """A copy of ``model`` whose timbral convs run in ``precision`` where this machine runs it faster.

    The argument is left unchanged; the copy keeps its ``tags``. Where the
    machine does not run ``precision`` faster than float32 (measured, see
    :meth:`MusiCNN.use_precision`) the copy computes in float32.
    """
    return copy.deepcopy(model).use_precision(precision)


def bfloat16_is_fast() -> bool:
    """Whether this machine computes bfloat16 products faster than float32: measured once, cached.

    oneDNN's own check also answers yes where bfloat16 is only emulated (and
    several times slower); see :func:`genrify.models.quantize.machine_precision`.
    """
    from genrify.models.quantize import machine_precision

    return machine_precision().bfloat16


def read_weights(path: str | Path, *, what: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and metadata of a weights file written by ``tools/convert_musicnn.py``.

    ``what`` names the network in error messages ("musicnn", "vgg"). The metadata
    must hold the tag names as JSON under ``"tags"``.

    Raises:
        ModelFileError: the file is missing, not safetensors, or has no tag names.
    """
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        state = load_file(str(path))
        json.loads(metadata["tags"])
    except FileNotFoundError:
        raise ModelFileError(f"{path}: {what} weights not found") from None
    except (OSError, KeyError, ValueError, RuntimeError, SafetensorError) as exc:
        raise ModelFileError(f"{path}: not a {what} weights file ({exc})") from None
    return state, metadata


def load_musicnn(*, weights: str | Path | None = None, fast: bool = False, precision: str | None = None) -> MusiCNN:
    """Build :class:`MusiCNN` with pretrained weights, in eval mode.

    Args:
        weights: a ``.safetensors`` file written by ``tools/convert_musicnn.py``;
            ``None`` loads the MSD_musicnn weights shipped with genrify.
        fast: compute the timbral convs in bfloat16 (:meth:`MusiCNN.use_bfloat16`);
            pair it with ``musicnn_patches(..., max_patches=FAST_PATCHES)`` for
            the fast whole-song mode.
        precision: overrides ``fast``'s choice: "float32", "bfloat16", "int8"
            or "fastest", each used only where this machine runs it faster
            (:meth:`MusiCNN.use_precision`).

    Returns:
        the model; its ``tags`` attribute lists the 50 tag names in output order.
    """
    path = Path(weights) if weights is not None else WEIGHTS_PATH
    state, metadata = read_weights(path, what="musicnn")
    tags = json.loads(metadata["tags"])
    model = MusiCNN(n_tags=len(tags), tags=tags)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelFileError(f"{path}: weights do not fit the musicnn architecture ({exc})") from None
    model = model.eval().requires_grad_(False)
    if precision is None:
        precision = "bfloat16" if fast else "float32"
    return model.use_precision(precision)  # in place: same as quantize_musicnn, without the copy


class MusicnnBackEnd(nn.Module):
    """musicnn's back end with a new genre layer, for fine-tuning (``musicnn-finetune``).

    Input: the backbone's per-window embedding ``(batch, 1506)`` (mid-end features
    max- and mean-pooled over time, see :mod:`genrify.models.embedder`).
    ``pool_bn → dense 1506→200 → ReLU → dense_bn`` are musicnn's own last layers,
    initialised from the pretrained weights; ``dense`` is trainable, the batch
    norms keep the pretrained statistics (a fixed affine map, so a batch of a few
    songs cannot disturb them). Then dropout and a new ``classifier`` (200 →
    ``n_classes``). Everything before the pooled embedding stays frozen, which is
    what makes fine-tuning cheap: the embeddings are computed once and stored.
    """

    def __init__(self, *, n_classes: int, dropout: float = 0.5, pretrained: bool = True):
        super().__init__()
        source = load_musicnn() if pretrained else MusiCNN()
        self.pool_bn = copy.deepcopy(source.pool_bn)
        self.dense = copy.deepcopy(source.dense).requires_grad_(True)
        self.dense_bn = copy.deepcopy(source.dense_bn)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(self.dense.out_features, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Genre logits ``(batch, n_classes)`` for embeddings ``x (batch, 1506)``."""
        h = self.dense_bn(torch.relu(self.dense(self.pool_bn(x))))
        return self.classifier(self.dropout(h))
