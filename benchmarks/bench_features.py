"""Feature extraction speed: genrify's MFCC / log-mel vs librosa's, one core, same clips, same run.

    .venv/bin/python benchmarks/bench_features.py            # all gtzan-mini clips, 44.1 and 22.05 kHz
    .venv/bin/python benchmarks/bench_features.py --smoke    # 3 clips, 1 round (seconds)

Clips are decoded and resampled once (not timed). Each clip is then analysed by
genrify and by librosa in alternation, so both see the same machine state;
clips/s is clips divided by the summed time. Also timed: the floor the issue
names (``torch.stft`` + the dense mel matrix product, nothing else) and the FFT
alone (``torch.fft.rfft`` of the windowed frames). The maximum differences are
absolute, in dB (log-mel) and in MFCC units (MFCCs of dB values).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=C.GTZAN_MINI, help="folder of real clips (genre/*.wav)")
    ap.add_argument("--rounds", type=int, default=3, help="passes over all clips (default 3)")
    ap.add_argument("--rates", default="44100,22050")
    ap.add_argument("--smoke", action="store_true", help="3 clips, 1 round: only checks the script runs")
    args = ap.parse_args(argv)

    import librosa
    import numpy as np
    import torch

    from genrify.audio import load_audio
    from genrify.config import FeatureConfig
    from genrify.features import FeatureExtractor

    limiter = C.limit_threads(1)  # noqa: F841 (held for the whole run)
    C.machine_header("features: genrify vs librosa, 1 core", extra={"BLAS": C.blas_kernels()})
    files = sorted(p for p in args.data.rglob("*") if p.suffix.lower() in (".wav", ".mp3", ".flac", ".au"))
    if args.smoke:
        files, args.rounds = files[:3], 1
    if not files:
        print(f"no clips under {args.data}")
        return 1
    n_fft, hop, n_mels, n_mfcc, top_db = 2048, 512, 128, 10, 80.0
    print(f"{len(files)} clips from {args.data}, n_fft {n_fft}, hop {hop}, {n_mels} mels, {n_mfcc} MFCCs, "
          f"{args.rounds} round(s)")
    clock = C.clock
    ok = True
    for sr in (int(r) for r in args.rates.split(",")):
        clips = [load_audio(p, sr=sr, max_duration=30.0)[0] for p in files]
        seconds = sum(len(y) for y in clips) / sr
        ours_mfcc = FeatureExtractor(FeatureConfig(kind="mfcc", sr=sr, n_fft=n_fft, hop_length=hop, n_mels=n_mels,
                                                   n_mfcc=n_mfcc, top_db=top_db))
        ours_mel = FeatureExtractor(FeatureConfig(kind="logmel", sr=sr, n_fft=n_fft, hop_length=hop, n_mels=n_mels,
                                                  top_db=top_db))
        fb = ours_mel.mel.fb
        window = torch.hann_window(n_fft)

        def lib_mfcc(y):
            return librosa.feature.mfcc(y=y, sr=sr, n_mfcc=n_mfcc, n_fft=n_fft, hop_length=hop, n_mels=n_mels)
            # librosa's mfcc applies power_to_db(ref=1, amin=1e-10, top_db=80), as genrify does

        def lib_mel(y):
            S = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=n_fft, hop_length=hop, n_mels=n_mels)
            return librosa.power_to_db(S, ref=1.0, amin=1e-10, top_db=top_db)

        def floor(y):  # the floor: STFT + dense mel product, nothing else
            with torch.inference_mode():
                spec = torch.stft(torch.from_numpy(y), n_fft=n_fft, hop_length=hop, window=window, center=True,
                                  pad_mode="constant", return_complex=True)
                return fb @ spec.abs().square_()

        def fft_only(y):
            with torch.inference_mode():
                frames = torch.nn.functional.pad(torch.from_numpy(y), (n_fft // 2, n_fft // 2)).unfold(-1, n_fft, hop)
                return torch.fft.rfft(frames * window)

        timers = {"genrify mfcc": (ours_mfcc.transform, []), "librosa mfcc": (lib_mfcc, []),
                  "genrify log-mel": (ours_mel.transform, []), "librosa log-mel": (lib_mel, []),
                  "floor: torch.stft + dense mel matmul": (floor, []), "FFT alone (rfft of frames)": (fft_only, [])}
        for fn, _ in timers.values():  # warm-up (first-call allocations, librosa's filter cache)
            fn(clips[0])
        diff_mfcc = diff_mel = 0.0
        for r in range(args.rounds):
            for y in clips:
                for name, (fn, times) in timers.items():
                    t = clock()
                    out = fn(y)
                    times.append(clock() - t)
                    if r == 0 and name == "genrify mfcc":
                        ref = lib_mfcc(y)
                        diff_mfcc = max(diff_mfcc, float(np.abs(out - ref).max()))
                    elif r == 0 and name == "genrify log-mel":
                        ref = lib_mel(y)
                        diff_mel = max(diff_mel, float(np.abs(out - ref).max()))
        n = len(clips) * args.rounds
        rate = {name: n / sum(times) for name, (_, times) in timers.items()}
        print(f"\n-- {sr} Hz: {len(clips)} clips, {seconds / len(clips):.1f} s each on average")
        print(f"{'':38s} {'clips/s':>8s}  per clip")
        for name, (_, times) in timers.items():
            print(f"{name:38s} {rate[name]:8.1f}  {C.summary_ms(times)}")
        r_mfcc = rate["genrify mfcc"] / rate["librosa mfcc"]
        r_mel = rate["genrify log-mel"] / rate["librosa log-mel"]
        floor_ms = 1e3 / rate["floor: torch.stft + dense mel matmul"]
        print(f"ratio genrify/librosa: MFCC {r_mfcc:.2f}x, log-mel {r_mel:.2f}x  (target >= 2x)")
        print(f"max |difference|: MFCC {diff_mfcc:.2e}, log-mel {diff_mel:.2e} dB  (target <= 1e-3)")
        print(f"genrify log-mel takes {1e3 / rate['genrify log-mel'] / floor_ms:.2f}x the floor "
              f"({1e3 / rate['genrify log-mel']:.1f} ms vs {floor_ms:.1f} ms); "
              f"the FFT alone is {1e3 / rate['FFT alone (rfft of frames)']:.1f} ms")
        ok &= diff_mfcc <= 1e-3 and diff_mel <= 1e-3
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
