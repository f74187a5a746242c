"""musicnn in float32 vs int8 vs bfloat16: CPU time per 30 s clip on one thread, and what int8 costs in accuracy.

float32 is the default path (timbral convs through a frequency DFT, see
``genrify.models.fftconv``); "float32 unfolded" is the same float32 conv as a
matrix product of the unfolded input (the path before the DFT), measured in the
same loop as the reference for that change.

    .venv/bin/python benchmarks/bench_int8.py                 # speed: 4 clips x 5 rounds; accuracy: every clip
    .venv/bin/python benchmarks/bench_int8.py --no-accuracy   # speed only
    .venv/bin/python benchmarks/bench_int8.py --smoke         # 1 clip, 1 round, no emulated bf16, 3 accuracy clips

Speed: the same 10 patches of each 30 s clip (music-speech/music, 16 kHz)
through :class:`MusiCNN` in each precision, set with ``set_precision`` (forced:
measured on every machine whatever genrify would choose), alternating precision
by precision within each round so all see the same machine load. Times are the
CPU time of this process (one thread), median and min–max over clips x rounds;
the load average is printed before and after. bfloat16 is timed on one clip
only where :func:`genrify.models.quantize.machine_precision` found it not
faster (emulated bfloat16 is 10–30× slower than float32; the micro-benchmark's
ratio is printed instead of spending minutes on it), unless ``--bf16``.

Accuracy: song-level probabilities (``GenreClassifier.predict_proba``) of the
bundled default model and of the bundled ``gtzan`` model with every musicnn
backbone of the classifier in int8 vs float32, on every clip of gtzan-mini,
gtzan-excerpts and cc-audio: the largest absolute difference and how many
songs change their top genre (an upper bound on how far any accuracy figure
computed from these predictions can move).

ONNX Runtime (``--ort DIR``: a folder where ``pip install --target DIR
onnxruntime onnx ml_dtypes protobuf flatbuffers`` put it; it is never a
genrify dependency): the timbral product (944 × 266 @ 266 × 204) as an ONNX
MatMul in float32 and dynamically quantised by ``onnxruntime.quantization
.quantize_dynamic`` (int8 weights per channel, 7-bit activations), against
torch's float32 product and genrify's int8 product, one thread, thread CPU
time; plus the time to import onnxruntime and its installed size.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

DATA = C.REPO.parent / "shared" / "data"
SPEED_CLIPS = DATA / "music-speech" / "music"


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _spread(xs: list[float]) -> str:
    return f"median {C.median(xs) * 1e3:7.1f} ms (min {min(xs) * 1e3:.1f} – max {max(xs) * 1e3:.1f}, n={len(xs)})"


def speed(*, n_clips: int, rounds: int, bf16_all: bool, bf16_clip: bool = True) -> None:
    import numpy as np
    import torch

    from genrify.audio import load_audio
    from genrify.features.musicnn import SR, musicnn_logmel, musicnn_patches
    from genrify.models.musicnn import load_musicnn
    from genrify.models.quantize import machine_precision

    decision = machine_precision()
    files = sorted(SPEED_CLIPS.glob("*.wav"))[:n_clips]
    if not files:
        print(f"no clips under {SPEED_CLIPS}: speed part skipped")
        return
    patches = [torch.from_numpy(musicnn_patches(musicnn_logmel(y=np.resize(load_audio(p, sr=SR)[0], 30 * SR))))
               for p in files]
    model = load_musicnn()
    variants = [*VARIANTS, *(["bfloat16"] if bf16_all or decision.bfloat16 else [])]
    cpu: dict[str, list[float]] = {v: [] for v in variants}
    outs: dict[str, list] = {v: [] for v in variants}
    print(f"\nspeed: {len(files)} clip(s) x {rounds} round(s), 10 patches each, network only; "
          f"load average before: {loadavg()}")
    with torch.inference_mode():
        for v in variants:  # warm-up: kernel creation, int8 weight packing
            _configure(model, v)(patches[0][:1])
        for r in range(rounds):
            for x in patches:
                for v in variants:
                    _configure(model, v)
                    c0 = time.process_time()
                    out = torch.sigmoid(model(x))
                    cpu[v].append(time.process_time() - c0)
                    if r == 0:
                        outs[v].append(out)
        if "bfloat16" not in variants and bf16_clip:
            _configure(model, "bfloat16")
            c0 = time.process_time()
            outs["bfloat16"] = [torch.sigmoid(model(patches[0]))]
            cpu["bfloat16 (1 clip, 1 round)"] = [time.process_time() - c0]
    print(f"load average after: {loadavg()}")
    print("CPU seconds per 30 s clip (10 patches), one thread:")
    for name, xs in cpu.items():
        ratio = C.median(cpu["float32"]) / C.median(xs)
        print(f"  {name:28s} {_spread(xs)}   float32 / this: {ratio:.2f}×")
    for v in [v for v in outs if v != "float32" and outs[v]]:
        d = max(float((a - b).abs().max()) for a, b in zip(outs[v], outs["float32"]))
        print(f"  max |tag probability difference| {v} vs float32 (per patch): {d:.1e}")
    t = decision.timings
    if t is not None:
        print(f"machine decision (micro-benchmark, cached): {decision.describe()}")


def _clips(smoke: bool) -> list[Path]:
    clips = (sorted(DATA.glob("gtzan-mini/*/*.wav")) + sorted(DATA.glob("gtzan-excerpts/*/*.wav"))
             + sorted(DATA.glob("cc-audio/*.ogg")))
    return clips[::90][:3] if smoke else clips


#: What is compared: "float32" (the default: timbral convs through the frequency DFT), the same
#: float32 conv as a product of the unfolded input (the path before the DFT), and int8.
VARIANTS = ("float32", "float32 unfolded", "int8")


def _configure(net, variant: str):
    """Set a musicnn network to ``variant`` (a precision, or "float32 unfolded"); returns it."""
    net.set_precision(variant.split()[0])
    for block in net.timbral:
        block.fft = variant == "float32"
    return net


def _set_all(clf, variant: str) -> None:
    emb = clf.backend.embedder
    for net in [emb.model, *emb.others.values()]:
        if hasattr(net, "set_precision"):
            _configure(net, variant)


def accuracy(*, smoke: bool) -> None:
    import numpy as np

    from genrify.predict import load_classifier

    clips = _clips(smoke)
    print(f"\naccuracy: {len(clips)} clips (gtzan-mini, gtzan-excerpts, cc-audio); load average {loadavg()}")
    for name in (None, "gtzan"):
        clf = load_classifier(name)
        others = VARIANTS[1:]
        worst = {v: (0.0, "") for v in others}
        flips: dict[str, list[str]] = {v: [] for v in others}
        t = dict.fromkeys(VARIANTS, 0.0)
        for path in clips:
            y = clf.load(str(path))
            probs = {}
            for v in VARIANTS:
                _set_all(clf, v)
                c0 = time.process_time()
                probs[v] = np.asarray(clf.predict_proba(y, sr=clf.sr))
                t[v] += time.process_time() - c0
            for v in others:
                d = float(np.abs(probs[v] - probs["float32"]).max())
                if d > worst[v][0]:
                    worst[v] = (d, str(path.relative_to(DATA)))
                if int(probs[v].argmax()) != int(probs["float32"].argmax()):
                    flips[v].append(str(path.relative_to(DATA)))
        label = "default model" if name is None else f"bundled {name!r} model"
        for v in others:
            print(f"  {label}: max |song probability difference| {v} vs float32 = {worst[v][0]:.1e} "
                  f"({worst[v][1]}); top genre changed on {len(flips[v])} of {len(clips)} songs {flips[v][:5]}")
        print(f"  {label}: CPU s in all (decoded audio in, features + network + head): "
              + ", ".join(f"{v} {t[v]:.1f}" for v in VARIANTS))


def _thread_ms(fn, n: int = 30) -> float:
    import statistics

    fn()
    times = []
    for _ in range(n):
        c0 = time.thread_time()
        fn()
        times.append(time.thread_time() - c0)
    return statistics.median(times) * 1e3


def ort_compare(folder: Path) -> None:
    import shutil
    import tempfile

    import numpy as np
    import torch

    from genrify.models.quantize import BENCH_SHAPE, int8_matmul, pack_int8

    sys.path.insert(0, str(folder))
    t0 = time.perf_counter()
    import onnxruntime as ort
    import_s = time.perf_counter() - t0
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    m, k, n = BENCH_SHAPE
    rng = np.random.default_rng(0)
    w, x = rng.standard_normal((k, n)).astype(np.float32), rng.standard_normal((m, k)).astype(np.float32)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "timbral",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])],
                              [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    tmp = Path(tempfile.mkdtemp(prefix="genrify-ort-"))
    try:
        onnx.save(model, tmp / "fp32.onnx")
        quantize_dynamic(tmp / "fp32.onnx", tmp / "int8.onnx", weight_type=QuantType.QInt8, per_channel=True,
                         reduce_range=True)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        s32, s8 = (ort.InferenceSession(str(tmp / f), opts, providers=["CPUExecutionProvider"])
                   for f in ("fp32.onnx", "int8.onnx"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    xt, wt = torch.from_numpy(x), torch.from_numpy(w)
    packed = pack_int8(wt)
    ref = x @ w
    size = sum(f.stat().st_size for f in (folder / "onnxruntime").rglob("*") if f.is_file()) / 2**20
    print(f"\nONNX Runtime {ort.__version__} vs torch {torch.__version__}: timbral product {m}×{k} @ {k}×{n}, "
          f"1 thread, median thread CPU ms of 30 (two passes); load average {loadavg()}")
    for rnd in range(2):
        print(f"  pass {rnd + 1}: ORT float32 {_thread_ms(lambda: s32.run(None, {'x': x})):.3f}  "
              f"ORT int8 {_thread_ms(lambda: s8.run(None, {'x': x})):.3f}  |  "
              f"torch float32 {_thread_ms(lambda: xt @ wt):.3f}  genrify int8 {_thread_ms(lambda: int8_matmul(xt, packed)):.3f}")
    err = {"ORT int8": np.abs(s8.run(None, {"x": x})[0] - ref).max(),
           "genrify int8": np.abs(int8_matmul(xt, packed).numpy() - ref).max()}
    print("  max |error| / max |product|: " + ", ".join(f"{k} {v / np.abs(ref).max():.4f}" for k, v in err.items()))
    print(f"  import onnxruntime: {import_s:.2f} s (wall, after torch); onnxruntime package on disk: {size:.0f} MiB")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=4, help="30 s clips for the speed part (default 4)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--bf16", action="store_true", help="time bfloat16 on every clip even where it is emulated")
    ap.add_argument("--no-accuracy", action="store_true")
    ap.add_argument("--ort", type=Path, help="folder holding onnxruntime (pip install --target): compare with it")
    ap.add_argument("--smoke", action="store_true", help="1 clip, 1 round, 3 accuracy clips: checks the script runs")
    args = ap.parse_args(argv)
    if args.smoke:
        args.clips, args.rounds = 1, 1

    import torch

    limiter = C.limit_threads(1)  # noqa: F841 (held for the whole run)
    C.machine_header("musicnn float32 vs int8 vs bfloat16, 1 thread",
                     extra={"torch threads": torch.get_num_threads(),
                            "quantized engine": torch.backends.quantized.engine,
                            "load average at start": loadavg()})
    speed(n_clips=args.clips, rounds=args.rounds, bf16_all=args.bf16, bf16_clip=not args.smoke)
    if args.ort:
        ort_compare(args.ort)
    if not args.no_accuracy:
        accuracy(smoke=args.smoke)
    return 0


if __name__ == "__main__":
    sys.exit(main())
