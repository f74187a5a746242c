"""Training speed: seconds per epoch of the CNN and the MLP on 1,000 cached windows, 2 threads.

    .venv/bin/python benchmarks/bench_train.py               # 1,000 windows, 3 epochs per measurement
    .venv/bin/python benchmarks/bench_train.py --smoke       # 200 windows, 1 epoch

Windows (10 MFCCs x 259 frames = 3 s, cut every 1.5 s as in training) come
from the feature images of synthetic 30 s clips at 44.1 kHz, computed once and
kept memory-mapped in a genrify feature store under $GENRIFY_BENCH_CACHE
(default /tmp/genrify-bench/train). ``genrify.train.loop.fit`` runs unchanged with
no validation set, so an epoch is only training. Measured in the same run: the
CNN as it is now and as it was before the speed-up ("before": LeakyReLU before
max-pooling, activations left in the default memory format after the first
convolution, which is what the model was at commit 06f29f1).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402


def before_cnn():
    """The CNN as it was before the speed-up: same parameters, same function, slower layout."""
    import torch

    from genrify.models.cnn import MfccCNN

    class BeforeCNN(MfccCNN):
        def __init__(self, **kw):
            super().__init__(**kw)
            f = self.features
            for i in range(0, len(f), 4):  # back to conv, BN, LeakyReLU, pool
                if isinstance(f[i + 2], torch.nn.MaxPool2d):
                    f[i + 2], f[i + 3] = f[i + 3], f[i + 2]

        def forward(self, x):
            x = x.unsqueeze(1).contiguous(memory_format=torch.channels_last)  # a no-op with one channel
            return self.head(self.features(x).contiguous())

    return BeforeCNN


def windows(n: int, *, per_clip_hop: float = 1.5):
    import numpy as np

    from genrify.config import FeatureConfig, RunConfig
    from genrify.dataset.store import FeatureStore
    from genrify.dataset.windows import cut_windows
    from genrify.features import FeatureExtractor
    from genrify.sources.synthetic import STYLES, generate_clip
    from genrify.dataset.windows import window_frames
    from genrify.train.loop import WindowSet
    from genrify.train.nets import normalisation_stats

    fc = FeatureConfig()
    size, hop, _ = window_frames(RunConfig(features=fc))
    store = FeatureStore(C.CACHE / "train" / "features")
    store.root.mkdir(parents=True, exist_ok=True)
    fe = None
    images, labels = [], []
    i = 0
    while sum(max(1, (im.shape[1] - size) // hop + 2) for im in images) < n:
        style = STYLES[i % len(STYLES)]
        key = f"{style}-{i}"
        if not store.has(key):
            fe = fe or FeatureExtractor(fc)
            store.write(key, fe.transform(generate_clip(style, seed=i, sr=fc.sr, duration=30.0)))
        images.append(store.read(key))  # memory-mapped
        labels.append(i % len(STYLES))
        i += 1
    mean, std = normalisation_stats(images)
    xs, ys = [], []
    for im, lab in zip(images, labels):
        w, _ = cut_windows((np.asarray(im) - mean[:, None]) / std[:, None], size=size, hop=hop)
        xs.append(w)
        ys += [lab] * len(w)
    x = np.concatenate(xs)[:n].astype(np.float32)
    y = np.array(ys[:n], dtype=np.int64)
    return WindowSet(x, y, np.zeros(len(y), np.int64)), len(images)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--windows", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=3, help="epochs per timed fit (default 3)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2, help="timed fits per variant, alternating (default 2)")
    ap.add_argument("--smoke", action="store_true", help="200 windows, 1 epoch, 1 round")
    args = ap.parse_args(argv)
    if args.smoke:
        args.windows, args.epochs, args.rounds = 200, 1, 1

    import genrify.models.cnn as cnn_module
    from genrify.config import ModelConfig, RunConfig, TrainConfig
    from genrify.train.loop import fit

    limiter = C.limit_threads(args.threads)  # noqa: F841
    C.machine_header(f"training: seconds per epoch, {args.threads} threads", librosa=False)
    data, n_clips = windows(args.windows)
    print(f"{len(data.y)} windows of {data.x.shape[1]} x {data.x.shape[2]} from {n_clips} cached synthetic clips; "
          f"batch 64, AdamW; {args.epochs} epochs per fit, {args.rounds} fits per variant")
    after_cls, before_cls = cnn_module.MfccCNN, before_cnn()
    variants = {"cnn before": ("cnn", before_cls), "cnn": ("cnn", after_cls), "mlp": ("mlp", after_cls)}
    times: dict[str, list[float]] = {k: [] for k in variants}
    try:
        for r in range(args.rounds + 1):  # round 0 warms up (allocator, oneDNN primitive cache)
            for name, (model, cls) in variants.items():
                cnn_module.MfccCNN = cls
                config = RunConfig(model=ModelConfig(name=model),
                                   train=TrainConfig(epochs=1 if r == 0 else args.epochs, patience=10**6,
                                                     threads=args.threads, seed=0))
                t = C.clock()
                fit(data, None, config=config, n_classes=5)
                if r > 0:
                    times[name].append((C.clock() - t) / args.epochs)
    finally:
        cnn_module.MfccCNN = after_cls
    for name, ts in times.items():
        print(f"{name:12s} {C.median(ts):6.3f} s/epoch  ({', '.join(f'{t:.3f}' for t in ts)})")
    print(f"CNN speed-up in this run: {C.median(times['cnn before']) / C.median(times['cnn']):.2f}x "
          f"(same parameters and function; 'before' = layout of commit 06f29f1)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
