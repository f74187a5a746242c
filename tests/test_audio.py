"""Decoding: every bad input fails cleanly or decodes sanely; codecs, downmix and resampling agree."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genrify.audio import AUDIO_EXTENSIONS, MEDIA_TYPES, SNIFFED_EXTENSIONS, load_audio, media_type, sniff_audio
from genrify.errors import AudioDecodeError, GenrifyError, InvalidAudioError
from genrify.sources.synthetic import generate_clip
from helpers.badinput import make_bad_corpus
from helpers.fakeprovider.catalogue import encode_m4a

SR = 22050
MAX_DURATION = 600.0
#: A sanity bound, not a benchmark: no single case may take anywhere near this long.
CASE_SECONDS = 20.0

CASE_NAMES = [case.name for case in make_bad_corpus("unused", write=False)]


@pytest.fixture(scope="module")
def bad_corpus(tmp_path_factory):
    return {case.name: case for case in make_bad_corpus(tmp_path_factory.mktemp("bad"))}


def test_bad_corpus_is_broad():
    assert len(CASE_NAMES) >= 20 and len(set(CASE_NAMES)) == len(CASE_NAMES)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_bad_input(bad_corpus, name):
    case = bad_corpus[name]
    if case.skip:
        pytest.skip(case.skip)
    start = time.monotonic()
    if case.expect == "error":
        with pytest.raises(GenrifyError) as info:
            load_audio(case.path, sr=SR, max_duration=MAX_DURATION)
        assert isinstance(info.value, (AudioDecodeError, InvalidAudioError))
        message = str(info.value)
        assert "\n" not in message and str(case.path) in message, message
    else:
        y, sr = load_audio(case.path, sr=SR, max_duration=MAX_DURATION)
        assert sr == SR
        assert y.dtype == np.float32 and y.ndim == 1 and y.size > 0
        assert np.isfinite(y).all()
        assert len(y) <= MAX_DURATION * SR + 1
    assert time.monotonic() - start < CASE_SECONDS


def test_over_an_hour_is_capped_at_max_duration(bad_corpus):
    y, sr = load_audio(bad_corpus["long_over_an_hour"].path, sr=SR, max_duration=MAX_DURATION)
    assert abs(len(y) / sr - MAX_DURATION) < 0.01


def test_truncated_files_keep_the_audio_before_the_cut(bad_corpus):
    for name in ("truncated_mp3", "truncated_flac", "truncated_ogg"):
        y, sr = load_audio(bad_corpus[name].path, sr=SR)
        assert 1.5 < len(y) / sr < 4.0, name  # 30 % of 10 s, give or take the container overhead
        assert np.sqrt(np.mean(y**2)) > 0.01, name


def test_lying_wav_header_returns_the_data_present(bad_corpus):
    for name in ("wav_claims_hours", "wav_claims_4gb_8ch_192k"):
        y, sr = load_audio(bad_corpus[name].path, sr=SR)
        assert abs(len(y) / sr - 0.5) < 0.01, name


def _align(ref: np.ndarray, y: np.ndarray, max_lag: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Shift ``y`` against ``ref`` by the lag (|lag| <= max_lag) that maximises their correlation."""
    n = min(len(ref), len(y))
    size = 1 << int(np.ceil(np.log2(2 * n)))
    xc = np.fft.irfft(np.fft.rfft(y[:n], size) * np.conj(np.fft.rfft(ref[:n], size)), size)
    lags = np.concatenate([np.arange(0, max_lag + 1), np.arange(-max_lag, 0)])
    lag = int(lags[np.argmax(np.concatenate([xc[: max_lag + 1], xc[-max_lag:]]))])
    y, ref = (y[lag:], ref) if lag >= 0 else (y, ref[-lag:])
    m = min(len(ref), len(y))
    return ref[:m], y[:m]


def _band_db(y: np.ndarray, sr: int = SR) -> np.ndarray:
    """Energy (dB) in octave bands from 62.5 Hz to 8 kHz."""
    power = np.abs(np.fft.rfft(y * np.hanning(len(y)))) ** 2
    freqs = np.fft.rfftfreq(len(y), 1 / sr)
    edges = 62.5 * 2.0 ** np.arange(8)
    return np.array([10 * np.log10(power[(freqs >= lo) & (freqs < 2 * lo)].sum() + 1e-12) for lo in edges])


# Lossless formats must match to 16-bit precision. Lossy ones must still follow the
# waveform (a modest SNR: MP3 and Vorbis drop masked detail) and keep the same
# octave-band spectrum within 3 dB wherever a band holds at least 1 % of the energy.
CODECS = {
    "wav": ({"format": "WAV", "subtype": "PCM_16"}, 60.0),
    "flac": ({"format": "FLAC", "subtype": "PCM_16"}, 60.0),
    "ogg": ({"format": "OGG", "subtype": "VORBIS"}, 10.0),
    "mp3": ({"format": "MP3", "subtype": "MPEG_LAYER_III"}, 10.0),
}


@pytest.mark.parametrize("style", ["classical", "edm"])
@pytest.mark.parametrize("fmt", list(CODECS))
def test_same_audio_decodes_alike_from_every_format(tmp_path, fmt, style):
    y = generate_clip(style, seed=2, duration=4.0) * np.float32(0.8)
    kwargs, min_snr_db = CODECS[fmt]
    path = tmp_path / f"clip.{fmt}"
    sf.write(path, y, SR, **kwargs)
    z, sr = load_audio(path, sr=None)
    assert sr == SR and z.dtype == np.float32
    assert abs(len(z) - len(y)) <= 0.01 * len(y)  # MP3/Vorbis may pad by a frame
    ref, out = _align(y, z)
    snr = 10 * np.log10(np.sum(ref**2) / np.sum((ref - out) ** 2))
    assert snr > min_snr_db, f"{fmt}: SNR {snr:.1f} dB"
    rms_db = 20 * np.log10(np.sqrt(np.mean(out**2)) / np.sqrt(np.mean(ref**2)))
    assert abs(rms_db) < 0.5, f"{fmt}: level off by {rms_db:.2f} dB"
    ref_db, out_db = _band_db(ref), _band_db(out)
    loud = ref_db > 10 * np.log10(np.sum(10 ** (ref_db / 10))) - 20  # bands holding >= 1 % of the energy
    bands = np.abs(out_db - ref_db)[loud]
    assert bands.max() < 3.0, f"{fmt}: octave bands differ by up to {bands.max():.2f} dB"


def test_float_samples_far_beyond_full_scale_are_scaled_to_it_and_sane_ones_kept(tmp_path):
    """Integer sample values written as floats (peak 32767) decode at full scale; a master that goes a
    little over (peak 1.5) is kept as it is."""
    y = generate_clip("jazz", seed=2, sr=22050, duration=2.0)
    y = y / np.abs(y).max()
    for peak, expected in ((32767.0, 1.0), (1e30, 1.0), (1.5, 1.5)):
        sf.write(tmp_path / "f.wav", (y * peak).astype(np.float32), 22050, subtype="FLOAT")
        for isolate in (False, True):
            got, _ = load_audio(tmp_path / "f.wav", sr=None, isolate=isolate)
            assert np.isclose(np.abs(got).max(), expected, rtol=1e-5), (peak, isolate)
            np.testing.assert_allclose(got / expected, y, atol=1e-5)


@pytest.mark.parametrize("channels", [2, 3, 8])
def test_multichannel_downmix_is_channel_average(tmp_path, channels):
    rng = np.random.default_rng(channels)
    t = np.arange(SR) / SR
    y = np.stack([0.3 * np.sin(2 * np.pi * (200 + 150 * c) * t + rng.uniform(0, 6)) for c in range(channels)], axis=1)
    y = y.astype(np.float32)
    path = tmp_path / f"multi{channels}.wav"
    sf.write(path, y, SR, subtype="FLOAT")
    z, sr = load_audio(path, sr=None)
    assert sr == SR and z.shape == (SR,)
    np.testing.assert_allclose(z, y.mean(axis=1), atol=1e-6)


@pytest.mark.parametrize("freq", [110.0, 1000.0, 4321.0, 9000.0])
def test_resampling_preserves_a_sines_frequency(tmp_path, freq):
    sr_in = 44100
    t = np.arange(2 * sr_in) / sr_in
    path = tmp_path / "sine.wav"
    sf.write(path, (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr_in, subtype="FLOAT")
    z, sr = load_audio(path, sr=22050)
    assert sr == 22050 and abs(len(z) - 2 * 22050) <= 1
    spectrum = np.abs(np.fft.rfft(z * np.hanning(len(z))))
    peak = np.fft.rfftfreq(len(z), 1 / sr)[np.argmax(spectrum)]
    assert abs(peak - freq) <= 1.0  # bins are 0.5 Hz wide for 2 s
    # The level survives too (soxr's passband is flat well below Nyquist).
    assert abs(np.sqrt(np.mean(z[1000:-1000] ** 2)) - 0.5 / np.sqrt(2)) < 0.01


# ---------------------------------------------------------------------------- what genrify knows about formats


def test_sniff_audio_recognises_every_format_genrify_writes():
    y = (0.2 * np.sin(2 * np.pi * 440 * np.arange(8000) / 8000)).astype(np.float32)
    for fmt, ext in [("WAV", ".wav"), ("FLAC", ".flac"), ("OGG", ".ogg"), ("MP3", ".mp3")]:
        buf = io.BytesIO()
        sf.write(buf, y, 8000, format=fmt)
        assert sniff_audio(buf.getvalue()[:16]) == ext, fmt
    assert sniff_audio(encode_m4a(y, 8000)[:16]) == ".m4a"
    assert sniff_audio(b"ID3\x04\x00" + b"\x00" * 11) == ".mp3"


@pytest.mark.parametrize("head", [b"", b"<!DOCTYPE html>", b"<html><body>", b'{"data": []}', b"\x89PNG\r\n\x1a\n",
                                  b"GIF89a", b"RIFF\x00\x00\x00\x00AVI LIST", b"\xff"])
def test_sniff_audio_refuses_what_is_not_audio(head):
    assert sniff_audio(head) is None


def test_declared_media_types_that_are_plainly_not_audio():
    from genrify.audio.formats import declared_not_audio

    for declared, named in [("text/plain; charset=utf-8", "text/plain"), ("Text/HTML", "text/html"),
                            ("image/png", "image/png"), (" application/json ", "application/json"),
                            ("application/xml", "application/xml")]:
        assert declared_not_audio(declared) == named, declared
    for declared in (None, "", "audio/mpeg", "audio/wav; codecs=1", "application/octet-stream", "video/mp4",
                     "multipart/form-data; boundary=x"):
        assert declared_not_audio(declared) is None, declared


def test_format_tables_agree():
    assert set(SNIFFED_EXTENSIONS) <= set(AUDIO_EXTENSIONS)
    assert set(MEDIA_TYPES) <= set(AUDIO_EXTENSIONS)
    assert all(media_type(f"song{ext.upper()}").startswith("audio/") for ext in SNIFFED_EXTENSIONS)
    assert media_type("a/b/song.mp3") == "audio/mpeg" and media_type("song.m4a") == "audio/mp4"
    assert media_type("notes.unknownext") == "application/octet-stream"


# ---- decoding in disposable worker processes

GTZAN_ROCK = Path(__file__).resolve().parents[2] / "shared" / "data" / "gtzan-mini" / "rock" / "rock.00000.wav"


@pytest.fixture(scope="module")
def hires_8ch(bad_corpus):
    return bad_corpus["flac_8ch_192k"].path


def test_isolated_decoding_gives_the_same_samples_as_in_process():
    a, sr_a = load_audio(GTZAN_ROCK, sr=16000)
    b, sr_b = load_audio(GTZAN_ROCK, sr=16000, isolate=False)
    assert sr_a == sr_b == 16000 and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)


def test_block_decoding_matches_a_one_shot_resample():
    import soundfile as sf

    from genrify.audio import resample

    y, sr = sf.read(GTZAN_ROCK, dtype="float32")
    expected = resample(y, orig_sr=sr, target_sr=16000)
    got, _ = load_audio(GTZAN_ROCK, sr=16000, isolate=False)
    np.testing.assert_array_equal(got, expected)


def test_a_decoder_that_crashes_costs_one_file_and_is_replaced(hires_8ch):
    import signal
    import threading
    import time

    from genrify.audio.isolation import DecoderPool

    pool = DecoderPool()
    try:
        pool.prewarm()
        pid = pool._idle[0].proc.pid
        outcome = {}

        def decode():
            try:
                outcome["y"] = pool.decode(hires_8ch, sr=16000, max_duration=None, offset=0.0, label="hires_8ch.flac")
            except GenrifyError as exc:
                outcome["error"] = str(exc)

        t = threading.Thread(target=decode)
        t.start()
        while pool._idle:  # wait until the worker has taken the file
            time.sleep(0.005)
        os.kill(pid, signal.SIGSEGV)
        t.join(30)
        assert outcome["error"] == "hires_8ch.flac: the decoder crashed on this file (killed by SIGSEGV)"
        assert pool.replaced == 1
        y, sr = pool.decode(GTZAN_ROCK, sr=16000, max_duration=None, offset=0.0, label="rock")
        assert sr == 16000 and y.size > 16000 * 10
    finally:
        pool.close()


def test_a_decoder_past_its_time_limit_is_stopped_and_replaced(hires_8ch):
    from genrify.audio.isolation import DecoderPool

    pool = DecoderPool()
    try:
        with pytest.raises(AudioDecodeError, match=r"^x\.flac: decoding took longer than 0\.01 s and was stopped$"):
            pool.decode(hires_8ch, sr=16000, max_duration=None, offset=0.0, label="x.flac", timeout=0.01)
        assert pool.replaced == 1
        y, _ = pool.decode(GTZAN_ROCK, sr=8000, max_duration=1.0, offset=0.0, label="rock")
        assert y.size == 8000
    finally:
        pool.close()


def test_a_decoder_over_its_memory_limit_fails_one_file_only(hires_8ch):
    from genrify.audio.isolation import DecoderPool

    # A worker maps ~100 MB before decoding; 60 s at 192 kHz kept at its own rate peaks at ~210 MB.
    pool = DecoderPool(address_space=160 * 2**20)
    try:
        with pytest.raises(GenrifyError) as info:
            pool.decode(hires_8ch, sr=None, max_duration=None, offset=0.0, label="hires_8ch.flac")
        assert str(info.value).startswith("hires_8ch.flac: ") and "\n" not in str(info.value)
        y, _ = pool.decode(GTZAN_ROCK, sr=8000, max_duration=1.0, offset=0.0, label="rock")
        assert y.size == 8000
    finally:
        pool.close()


def test_output_too_large_for_the_budget_is_refused_from_the_header(hires_8ch):
    import genrify.audio.decode as decode

    budget = decode.DECODE_BUDGET_BYTES
    try:
        decode.DECODE_BUDGET_BYTES = 32 * 2**20
        with pytest.raises(InvalidAudioError, match=r"too large to decode: 60 s at 192000 Hz would take 43 MB"):
            load_audio(hires_8ch, sr=None, isolate=False)
    finally:
        decode.DECODE_BUDGET_BYTES = budget


def test_a_fifo_or_device_is_refused_without_reading(tmp_path):
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    with pytest.raises(AudioDecodeError, match=r"pipe\.wav: not a regular file"):
        load_audio(fifo)
    link = tmp_path / "zero.wav"
    link.symlink_to("/dev/zero")
    with pytest.raises(AudioDecodeError, match=r"zero\.wav: not a regular file"):
        load_audio(link)


@pytest.mark.slow
def test_ten_minutes_of_8_channel_192k_flac_decodes_within_the_memory_budget(tmp_path):
    from helpers.badinput import _flac_8ch_192k

    from genrify.audio import DECODE_WORK_SAMPLES
    from genrify.audio.isolation import DecoderPool

    path = tmp_path / "bomb.flac"
    _flac_8ch_192k(path, seconds=600)
    pool = DecoderPool()
    try:
        y, sr = pool.decode(path, sr=16000, max_duration=600.0, offset=0.0, label="bomb.flac")
        # 921 million samples: decoded up to the work budget (87 s of the 600), in bounded memory.
        assert sr == 16000 and abs(y.size - DECODE_WORK_SAMPLES // 8 * 16000 / 192000) <= 1
        status = Path(f"/proc/{pool._idle[0].proc.pid}/status").read_text()
        peak_kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")))
        assert peak_kb < 500 * 1024, f"decoder peak RSS {peak_kb / 1024:.0f} MB"
    finally:
        pool.close()


def _encode_with_ffmpeg(path: Path, *, container: str, codec: str, sr: int) -> None:
    """Write 3 s of a two-tone signal with PyAV (FFmpeg's encoders)."""
    import av

    t = np.arange(3 * sr) / sr
    y = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 660 * t)).astype(np.float32)
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=sr, layout="mono")
        stream.bit_rate = 96000
        fmt = stream.codec_context.format.name  # mono: packed and planar are both (1, samples)
        data = (y * 32767).astype(np.int16) if fmt.startswith("s16") else y
        frame_size = stream.codec_context.frame_size or 1024
        for start in range(0, len(y), frame_size):
            frame = av.AudioFrame.from_ndarray(data[None, start:start + frame_size], format=fmt, layout="mono")
            frame.sample_rate = sr
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def test_every_extension_that_decodes_when_named_is_taken_by_folder_scans(tmp_path):
    """.wma and .webm decode when named, so a folder scan takes them too (one list of extensions)."""
    from genrify.sources.folder import audio_files

    _encode_with_ffmpeg(tmp_path / "song.wma", container="asf", codec="wmav2", sr=44100)
    _encode_with_ffmpeg(tmp_path / "song.webm", container="webm", codec="libopus", sr=48000)
    (tmp_path / "notes.txt").write_text("not audio")
    found = audio_files(tmp_path)
    assert [p.name for p in found] == ["song.webm", "song.wma"]
    for path in found:
        y, sr = load_audio(path, sr=SR)
        assert abs(len(y) / sr - 3.0) < 0.1 and np.abs(y).max() > 0.1, path


@pytest.mark.parametrize("content", [b"hello world\n", "caf\u00e9 au lait, not a song at all\n".encode("latin-1"),
                                     "na\u00efve r\u00e9sum\u00e9 of a text file\n".encode("utf-8") * 3])
def test_a_text_file_named_mp3_is_not_audio(tmp_path, content):
    path = tmp_path / "notes.mp3"
    path.write_bytes(content)
    with pytest.raises(AudioDecodeError, match=r"notes\.mp3: not an audio file \(looks like plain text\)"):
        load_audio(path, sr=SR)


# ---------------------------------------------------------------------------- work per file


def _silence(path: Path, *, sr: int, channels: int, seconds: float, fmt: str = "FLAC") -> Path:
    """``seconds`` of ``channels``-channel silence at ``sr`` Hz: a few KB on disk, any number of samples decoded."""
    block = np.zeros((sr, channels), np.int16)
    with sf.SoundFile(path, "w", samplerate=sr, channels=channels, format=fmt, subtype="PCM_16") as f:
        for _ in range(int(seconds)):
            f.write(block)
    return path


def test_the_work_of_one_file_is_bounded_and_the_cut_is_stated(tmp_path, monkeypatch, caplog):
    """Samples decoded (channels x rate x seconds) are capped per file, whichever decoder reads it; the cut is logged."""
    import genrify.audio.decode as decode

    flac = _silence(tmp_path / "hires.flac", sr=384000, channels=8, seconds=3)
    m4a = tmp_path / "song.m4a"  # AAC: libsndfile refuses it, FFmpeg reads it
    m4a.write_bytes(encode_m4a(generate_clip("metal", seed=0, sr=48000, duration=3.0), 48000))
    # One second of 8 x 384 kHz: the FLAC is cut after 1 s by libsndfile's reader ...
    monkeypatch.setattr(decode, "DECODE_WORK_SAMPLES", 8 * 384000)
    with caplog.at_level("WARNING", logger="genrify.audio"):
        y, sr = load_audio(flac, sr=16000, isolate=False)
    assert sr == 16000 and abs(len(y) / sr - 1.0) < 0.01
    assert "hires.flac: decoded only the first 1.0 s: 8 channels at 384000 Hz" in caplog.text
    # ... the AAC by FFmpeg's after 1.5 s of its one channel at 48 kHz; under the budget, no cut and no warning.
    caplog.clear()
    monkeypatch.setattr(decode, "DECODE_WORK_SAMPLES", 48000 * 3 // 2)
    with caplog.at_level("WARNING", logger="genrify.audio"):
        y, sr = load_audio(m4a, sr=16000, isolate=False)
        assert abs(len(y) / sr - 1.5) < 0.01 and "song.m4a: decoded only the first 1.5 s" in caplog.text
        caplog.clear()
        y, _ = load_audio(m4a, sr=16000, max_duration=1.0, isolate=False)
    assert abs(len(y) / 16000 - 1.0) < 0.01 and "decoded only" not in caplog.text


@pytest.mark.slow
def test_a_file_cut_by_the_work_budget_in_a_worker_is_stated_in_the_caller(tmp_path, caplog):
    """At the real budget: 8 channels at 384 kHz stop after DECODE_WORK_SAMPLES, and the worker says so."""
    from genrify.audio import DECODE_WORK_SAMPLES

    flac = _silence(tmp_path / "hires.flac", sr=384000, channels=8, seconds=50)
    kept = DECODE_WORK_SAMPLES / (8 * 384000)
    assert kept < 50
    with caplog.at_level("WARNING", logger="genrify.audio"):
        y, sr = load_audio(flac, sr=8000)
    assert abs(len(y) / sr - kept) < 0.01
    assert f"hires.flac: decoded only the first {kept:.1f} s: 8 channels at 384000 Hz" in caplog.text
