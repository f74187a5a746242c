"""musicnn tagging speed on one core: full mode (every 3 s patch, float32) and fast mode.

    .venv/bin/python benchmarks/bench_musicnn.py            # 3 clips of 30 s + one 4-min "song", 5 rounds
    .venv/bin/python benchmarks/bench_musicnn.py --smoke    # 1 clip, 1 round, no full-song full mode

Audio is decoded and resampled to 16 kHz once (not timed). Timed per 30 s clip:

* ``logmel``: the musicnn input (STFT, mel, float16 rounding, log), all frames;
* ``network full``: all 10 non-overlapping patches through :class:`MusiCNN` as
  one batch (float32, timbral convs through the frequency DFT: the
  reference-exact path);
* ``full``: logmel + patching + network full;
* ``fast``: logmel + ``FAST_PATCHES`` (3) spread patches + the network as
  ``load_musicnn(fast=True)`` runs it (bfloat16 timbral convs where this CPU
  measures them faster, else float32).

The "song" is eight 30 s clips joined (4 min); fast mode costs the same as for
a clip plus the longer log-mel. Reference: the targets of the port. The
comparison with musicnn 0.1.0 itself under TensorFlow is measured in the same
run by ``benchmarks/bench_musicnn_tf.py`` (no figure copied from elsewhere is
printed here); float32 vs int8 vs bfloat16 by ``benchmarks/bench_int8.py``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

MUSIC = C.REPO.parent / "shared" / "data" / "music-speech" / "music"
TARGET_MS = {"full, 30 s clip": 1000.0, "fast, 30 s clip": 150.0, "fast, whole song": 300.0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=MUSIC, help="folder of 30 s music clips (*.wav)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--smoke", action="store_true", help="1 clip, 1 round: only checks the script runs")
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    from genrify.audio import load_audio
    from genrify.features.musicnn import SR, musicnn_logmel, musicnn_patches
    from genrify.models.musicnn import FAST_PATCHES, bfloat16_is_fast, load_musicnn

    limiter = C.limit_threads(1)  # noqa: F841 (held for the whole run)
    C.machine_header("musicnn (MSD_musicnn) tagging, 1 core",
                     extra={"bfloat16 faster here (measured)": bfloat16_is_fast(),
                            "torch threads": torch.get_num_threads()})
    files = sorted(args.data.glob("*.wav"))[:8]
    if not files:
        print(f"no clips under {args.data}")
        return 1
    clips = [load_audio(p, sr=SR, max_duration=30.0)[0] for p in files]
    clips = [np.resize(y, 30 * SR) for y in clips]  # exactly 30 s (wrap the odd short one)
    song = np.concatenate(clips)
    test_clips = clips[:1] if args.smoke else clips[:3]
    rounds = 1 if args.smoke else args.rounds
    print(f"{len(test_clips)} clip(s) of 30 s from {args.data}; song of {len(song) / SR:.0f} s; {rounds} round(s)")

    full_model, fast_model = load_musicnn(), load_musicnn(fast=True)

    def full(y):
        x = torch.from_numpy(musicnn_patches(musicnn_logmel(y=y)))
        return torch.sigmoid(full_model(x)).mean(0)

    def fast(y):
        x = torch.from_numpy(musicnn_patches(musicnn_logmel(y=y), max_patches=FAST_PATCHES))
        return torch.sigmoid(fast_model(x)).mean(0)

    patches10 = [torch.from_numpy(musicnn_patches(musicnn_logmel(y=y))) for y in test_clips]
    assert all(p.shape[0] == 10 for p in patches10)
    wall: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}

    def timed(name, fn, arg):
        t0, c0 = C.clock(), time.process_time()
        result = fn(arg)
        wall.setdefault(name, []).append(C.clock() - t0)
        cpu.setdefault(name, []).append(time.process_time() - c0)
        return result

    with torch.inference_mode():
        full(test_clips[0]), fast(test_clips[0])  # warm-up: oneDNN kernel creation
        for _ in range(rounds):
            for y, x in zip(test_clips, patches10):
                timed("logmel", lambda a: musicnn_logmel(y=a), y)
                timed("network full (10 patches)", full_model, x)
                clip_full = timed("full", full, y)
                clip_fast = timed("fast", fast, y)
            timed("fast, whole song", fast, song)
        if not args.smoke:
            timed(f"full, whole song ({len(song) // (187 * 256)} patches)", full, song)

    print("\nms per 30 s clip or per song, wall clock | CPU time of this process (median, min–max):")
    for name in wall:
        print(f"  {name:32s} wall {C.summary_ms(wall[name])} | cpu {C.summary_ms(cpu[name])}")
    print(f"fast vs full on the last clip: max |Δ mean tag probability| = "
          f"{float((clip_full - clip_fast).abs().max()):.3f}")

    keys = {"full, 30 s clip": "full", "fast, 30 s clip": "fast", "fast, whole song": "fast, whole song"}
    print("\nagainst targets (median; CPU time is what one free core would take on a busy machine):")
    for name, target in TARGET_MS.items():
        w, c = C.median(wall[keys[name]]) * 1e3, C.median(cpu[keys[name]]) * 1e3
        print(f"  {name:18s} wall {w:7.1f} ms  cpu {c:7.1f} ms  target {target:6.0f} ms  "
              f"ratio wall {w / target:.2f} cpu {c / target:.2f}  {'ok' if min(w, c) <= target else 'OVER'}")
    print("against musicnn 0.1.0 under TensorFlow: run benchmarks/bench_musicnn_tf.py (same clips, same run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
