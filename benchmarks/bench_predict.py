"""One song end to end: a 30 s MP3 and a 30 s M4A → top-2 genres with the CNN, warm process, one core.

    .venv/bin/python benchmarks/bench_predict.py             # median of 25 per file
    .venv/bin/python benchmarks/bench_predict.py --smoke     # 3 repetitions

The songs are synthetic 44.1 kHz clips (cached under $GENRIFY_BENCH_CACHE,
default /tmp/genrify-bench); the CNN is trained for two epochs on synthetic
clips the first time (its speed does not depend on its accuracy). Measured side
by side in the same loop: ``GenreClassifier.predict`` (end to end), its parts
(decode / features / model: normalise + windows + CNN + softmax), decoding in
this process instead of genrify's disposable decoder worker (``isolate=False``:
what the isolation costs), and the same model fed by ``librosa.load`` +
``librosa.feature.mfcc``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402


#: One 30 s song end to end with the 2017 CNN, warm (ms).
TARGET_MS = 40


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=25, help="timed repetitions per file (default 25)")
    ap.add_argument("--model", type=Path, help="a .genrify CNN model (default: train a small one, cached)")
    ap.add_argument("--smoke", action="store_true", help="3 repetitions: only checks the script runs")
    args = ap.parse_args(argv)
    if args.smoke:
        args.repeat = 3

    import numpy as np
    import torch

    from genrify.audio import load_audio
    from genrify.dataset.windows import cut_windows
    from genrify.predict import GenreClassifier

    limiter = C.limit_threads(1)  # noqa: F841
    C.machine_header("predict: one 30 s song → top-2 genres, CNN, 1 core, warm process")
    cache = C.CACHE / "predict"
    songs = [C.synthetic_song(cache / f"song.{ext}", style="jazz", seed=7) for ext in ("mp3", "m4a")]
    model_path = args.model or C.train_demo_model(C.CACHE / "models" / "cnn.genrify", name="cnn")
    clf = GenreClassifier.from_file(model_path)
    be = clf.backend
    fc = clf.config.features
    print(f"model {model_path} ({clf.config.model.name}, {fc.kind} {fc.n_features} x {be.size} windows, "
          f"hop {be.hop} frames); {args.repeat} repetitions per file")
    import librosa

    def model_part(image):
        image = (image - be.mean[:, None]) / be.std[:, None]
        windows, _ = cut_windows(image, size=be.size, hop=be.hop)
        with torch.inference_mode():
            probs = torch.softmax(be.net(torch.from_numpy(windows.astype(np.float32))) / be.temperature, dim=1)
        p = probs.numpy().mean(axis=0)
        return [clf.labels[i] for i in np.argsort(-p)[:2]]

    clock = C.clock
    for song in songs:
        print(f"\n-- {song.name} ({song.stat().st_size / 1e3:.0f} kB)")
        t = {k: [] for k in ("end to end", "decode", "features", "model", "decode in process",
                             "librosa decode", "librosa features", "librosa model", "librosa total")}
        lib_error = None
        top = clf.predict(song, top_k=2)  # warm-up
        for _ in range(args.repeat):
            t0 = clock()
            top = clf.predict(song, top_k=2)
            t["end to end"].append(clock() - t0)
            t0 = clock()
            y = clf.load(song)
            t1 = clock()
            image = be.extractor.transform(y)
            t2 = clock()
            model_part(image)
            t3 = clock()
            t["decode"].append(t1 - t0)
            t["features"].append(t2 - t1)
            t["model"].append(t3 - t2)
            t0 = clock()
            load_audio(song, sr=clf.sr, max_duration=clf.config.audio.max_duration, isolate=False)
            t["decode in process"].append(clock() - t0)
            if lib_error:
                continue
            try:
                t0 = clock()
                y, sr = librosa.load(song, sr=fc.sr, mono=True)
                t1 = clock()
                image = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=fc.n_mfcc, n_fft=fc.n_fft, hop_length=fc.hop_length,
                                             n_mels=fc.n_mels)
                t2 = clock()
                model_part(image)
                t3 = clock()
            except Exception as exc:  # noqa: BLE001 (reported, not hidden)
                lib_error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
                continue
            t["librosa decode"].append(t1 - t0)
            t["librosa features"].append(t2 - t1)
            t["librosa model"].append(t3 - t2)
            t["librosa total"].append(t3 - t0)
        print(f"top-2: {top}")
        for name, times in t.items():
            if times:
                print(f"{name:18s} {C.summary_ms(times)}")
        e2e = C.median(t["end to end"]) * 1e3
        print(f"genrify end to end median {e2e:.1f} ms (target <= {TARGET_MS} ms): "
              f"{'met' if e2e <= TARGET_MS else 'MISSED'}")
        if lib_error:
            print(f"librosa pipeline could not run on {song.suffix}: {lib_error}")
        else:
            ratio = C.median(t["librosa total"]) / C.median(t["end to end"])
            print(f"ratio librosa pipeline / genrify: {ratio:.2f}x (features alone "
                  f"{C.median(t['librosa features']) / C.median(t['features']):.2f}x)")
        cost = (C.median(t["decode"]) - C.median(t["decode in process"])) * 1e3
        print(f"decoding in a worker process costs {cost:+.1f} ms per song over decoding in process")
    return 0


if __name__ == "__main__":
    sys.exit(main())
