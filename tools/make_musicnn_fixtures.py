"""Make the TensorFlow reference outputs that tests/test_backbones.py checks the PyTorch ports against.

One-off tool, like tools/convert_musicnn.py; genrify never imports it. It runs
musicnn 0.1.0 itself (TensorFlow, from the wheel) on short excerpts of real
clips and writes, for each clip, ``tests/fixtures/musicnn_tf/<clip>.npz`` with
the exact model input and every model's outputs. No audio is stored.

How to run it (in the throwaway virtual environment of tools/convert_musicnn.py,
with librosa for musicnn's input pipeline)::

    python3.11 -m venv /tmp/tfenv
    /tmp/tfenv/bin/pip install tensorflow-cpu==2.15.1 safetensors librosa==0.11.0 "numpy<2"
    cd /tmp && /tmp/tfenv/bin/pip download musicnn==0.1.0 --no-deps
    /tmp/tfenv/bin/python tools/make_musicnn_fixtures.py \\
        --wheel /tmp/musicnn-0.1.0-py3-none-any.whl --data ../shared/data \\
        --out tests/fixtures/musicnn_tf

What it does, per clip: copies a ``DURATION``-second excerpt starting at
``OFFSET`` seconds (the int16 samples, no re-encoding) to a temporary WAV; takes
the input patches from ``musicnn.extractor.batch_data(wav, 187, 187)`` (the call
``extractor`` makes: librosa load at 16 kHz, mel, float16, log10(10000·x+1),
non-overlapping 187-frame patches); runs the official
``musicnn.extractor.extractor(wav, model=M, input_length=3, input_overlap=False,
extract_features=True)`` for each model ``M``; and, because that function's
musicnn ``penultimate`` repeats the first patch's value for later patches (a bug
of musicnn 0.1.0), runs the same graph and checkpoint patch by patch in one
session for the per-patch embeddings, checking its tag probabilities against
``extractor``'s.

Keys of each ``.npz`` (float32 unless noted): ``source_path`` (str, relative to
the data folder), ``offset_s``, ``duration_s``; ``input_patches`` (n, 187, 96);
then per model ``M`` in MODELS: ``M.tags`` (50,) str, ``M.taggram`` (n, 50) from
``extractor``; ``M.penultimate`` — musicnn: (n, 200) dense layer after batch
norm; vgg: (n, 256) pool5 flattened (time, mel, channel) — and, for musicnn,
``M.max_pool`` and ``M.mean_pool`` (n, 753) from ``extractor``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

MODELS = ("MSD_musicnn", "MTT_musicnn", "MSD_vgg", "MTT_vgg")
CLIPS = ("gtzan-mini/classical/classical.00000.wav", "gtzan-mini/metal/metal.00000.wav")
OFFSET = 5.0  # seconds: past any fade-in (the gtzan-mini clips last about 16 s)
DURATION = 6.0  # seconds: two 3 s patches (376 frames at 16 kHz, hop 256)
PATCH_FRAMES = 187


def _cut(src: Path, dst: Path) -> None:
    """Copy DURATION s from OFFSET s of ``src`` to ``dst`` as 16-bit PCM (the samples unchanged)."""
    import soundfile as sf

    info = sf.info(str(src))
    assert info.subtype == "PCM_16", info.subtype  # so that int16 copies the samples exactly
    y, sr = sf.read(str(src), dtype="int16", start=int(OFFSET * info.samplerate),
                    frames=int(DURATION * info.samplerate))
    sf.write(str(dst), y, sr, subtype="PCM_16")


def _per_patch(model: str, patches: np.ndarray, checkpoint: str) -> dict[str, np.ndarray]:
    """The taggram and embeddings of ``patches``, one patch per session run (as ``extractor`` feeds them)."""
    import tensorflow as tf
    from musicnn import models

    tf.compat.v1.reset_default_graph()
    with tf.name_scope("model"):
        x = tf.compat.v1.placeholder(tf.float32, [None, PATCH_FRAMES, patches.shape[2]])
        is_training = tf.compat.v1.placeholder(tf.bool)
        outs = models.define_model(x, is_training, model, 50)
        taggram = tf.nn.sigmoid(outs[0])
        # musicnn: the 200-unit dense layer after its batch norm; vgg: pool5 flattened as its dense layer sees it.
        penultimate = outs[8] if "musicnn" in model else tf.compat.v1.layers.flatten(outs[5])
    rows = []
    with tf.compat.v1.Session() as sess:
        tf.compat.v1.train.Saver().restore(sess, checkpoint)
        for patch in patches:
            rows.append(sess.run([taggram, penultimate], feed_dict={x: patch[None], is_training: False}))
    return {"taggram": np.concatenate([r[0] for r in rows]), "penultimate": np.concatenate([r[1] for r in rows])}


def _clip_fixture(wav: Path, root: Path) -> dict[str, np.ndarray]:
    from musicnn.extractor import batch_data, extractor

    patches, _ = batch_data(str(wav), PATCH_FRAMES, PATCH_FRAMES)
    out = {"input_patches": patches.astype(np.float32)}
    for model in MODELS:
        taggram, tags, features = extractor(str(wav), model=model, input_length=3, input_overlap=False,
                                            extract_features=True)
        mine = _per_patch(model, out["input_patches"], str(root / model) + "/")
        gap = float(np.abs(mine["taggram"] - taggram).max())
        assert gap < 1e-5, f"{model}: per-patch session differs from extractor() by {gap}"
        out[f"{model}.tags"] = np.array(tags)
        out[f"{model}.taggram"] = taggram.astype(np.float32)
        out[f"{model}.penultimate"] = mine["penultimate"].astype(np.float32)
        if "musicnn" in model:
            out[f"{model}.max_pool"] = features["max_pool"].astype(np.float32)
            out[f"{model}.mean_pool"] = features["mean_pool"].astype(np.float32)
        else:  # extractor's pool5 is correct for vgg: check the flattening against it
            flat = features["pool5"].reshape(len(patches), -1)
            assert np.array_equal(flat, mine["penultimate"]), f"{model}: pool5 differs from extractor()"
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, required=True, help="path to musicnn-0.1.0-py3-none-any.whl")
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder (holds gtzan-mini/)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the .npz files")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(args.wheel) as wheel:
        wheel.extractall(tmp)
        sys.path.insert(0, tmp)  # import musicnn from the wheel: its declared requirements do not install on 3.11
        for clip in CLIPS:
            wav = Path(tmp) / "excerpt.wav"
            _cut(args.data / clip, wav)
            arrays = _clip_fixture(wav, Path(tmp) / "musicnn")
            arrays.update(source_path=np.array(clip), offset_s=np.float32(OFFSET), duration_s=np.float32(DURATION))
            target = args.out / (Path(clip).stem + ".npz")
            fd, tmp_name = tempfile.mkstemp(dir=args.out, suffix=".tmp.npz")
            os.close(fd)
            np.savez_compressed(tmp_name, **arrays)
            os.chmod(tmp_name, 0o644)
            os.replace(tmp_name, target)
            print(f"wrote {target} ({target.stat().st_size} bytes, {len(arrays['input_patches'])} patches)")


if __name__ == "__main__":
    main()
