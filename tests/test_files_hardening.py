"""Files that are not what their names say: FIFOs, links to devices, huge files, hostile names.

Everything here is real: FIFOs made with ``os.mkfifo``, symbolic links to
``/dev/zero``, sparse files just over the size limit, file names holding
terminal escape sequences and newlines. A regression would hang rather than
fail, so the scans run under a guard that fails the test instead
(``_finishes``); the commands run in subprocesses with a timeout.
"""

from __future__ import annotations

import os
import stat
import threading

import numpy as np
import pytest

from genrify.errors import DatasetError
from genrify.fileio import (
    MAX_FILE_BYTES,
    is_temporary,
    read_regular,
    remove_stale_temporaries,
    stat_regular,
    terminal_safe,
)

#: A name that would retitle the terminal (OSC 0) and split the output line.
HOSTILE = "evil\x1b]0;owned\x07\nline.wav"


def _finishes(fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, failing the test (not hanging the suite) should it block on a FIFO."""
    out: dict = {}

    def run():
        try:
            out["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # re-raised in the test's thread
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(120)
    assert not t.is_alive(), f"{fn.__name__} blocked (a FIFO opened for reading?)"
    if "error" in out:
        raise out["error"]
    return out["value"]


def _sine_wav(path, seconds=2.0, sr=22050, freq=440.0):
    import soundfile as sf

    t = np.arange(int(seconds * sr)) / sr
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype("float32"), sr)
    return path


def _huge(path):
    """A sparse file one byte over the limit: no disk used, and nothing should ever read it."""
    with open(path, "wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)
    return path


# ---------------------------------------------------------------------------- fileio: bounded reads


def test_read_regular_refuses_fifos_devices_folders_and_huge_files(tmp_path):
    fifo = tmp_path / "pipe.genrify"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.wav"
    zero.symlink_to("/dev/zero")
    cases = {fifo: "named pipe", zero: "character device", tmp_path: "directory", _huge(tmp_path / "big.wav"): "too large"}
    for path, words in cases.items():
        for fn in (stat_regular, read_regular):
            with pytest.raises(OSError) as err:
                _finishes(fn, path)
            assert words in err.value.strerror and "\n" not in err.value.strerror
    with pytest.raises(IsADirectoryError):
        read_regular(tmp_path)
    with pytest.raises(FileNotFoundError):
        read_regular(tmp_path / "missing.wav")


def test_read_regular_reads_a_file_within_the_limit_and_refuses_one_over(tmp_path):
    path = tmp_path / "song.bin"
    path.write_bytes(b"x" * 1000)
    assert read_regular(path) == b"x" * 1000
    assert read_regular(path, max_bytes=1000) == b"x" * 1000
    with pytest.raises(OSError, match="too large"):
        read_regular(path, max_bytes=999)
    link = tmp_path / "link.bin"
    link.symlink_to(path)
    assert stat_regular(link).st_size == 1000  # a link to a regular file is followed


def test_only_genrifys_temporary_names_count_as_temporaries():
    assert is_temporary(".song.mp3.genrify-ab_c1234.part")
    assert is_temporary(".a name with\nnewline.flac.genrify-00000000.part")
    for name in (".song.mp3.abc12345.part", "song.mp3.genrify-abc12345.part", ".song.mp3.genrify-abc.part",
                 ".song.mp3.genrify-ABCD1234.part", ".song.mp3.genrify-abcd1234.part.mp3"):
        assert not is_temporary(name), name


def test_stale_temporaries_go_and_young_ones_stay(tmp_path):
    old, young = tmp_path / ".a.wav.genrify-aaaaaaaa.part", tmp_path / ".b.wav.genrify-bbbbbbbb.part"
    for p in (old, young):
        p.write_bytes(b"half")
    os.utime(old, (0, 0))
    assert remove_stale_temporaries(tmp_path) == [old]
    assert young.exists() and remove_stale_temporaries(tmp_path / "missing") == []


# ---------------------------------------------------------------------------- terminal-safe names


def test_terminal_safe_escapes_what_a_terminal_would_act_on():
    assert terminal_safe(HOSTILE) == "evil\\x1b]0;owned\\x07\\nline.wav"
    assert terminal_safe("a\rb\tc\x7fd\x9be") == "a\\rb\\tc\\x7fd\\x9be"
    assert terminal_safe("right\u202eto-left\u2028x") == "right\\u202eto-left\\u2028x"
    assert terminal_safe(os.fsdecode(b"caf\xe9.mp3")) == "caf\\xe9.mp3"  # a Latin-1 name on a UTF-8 system
    plain = "Beyoncé – 東京 (live) [2019].mp3"
    assert terminal_safe(plain) == plain
    assert terminal_safe("one\ntwo\x1b[31m", lines=True) == "one\ntwo\\x1b[31m"
    from pathlib import Path

    assert terminal_safe(Path("/music") / HOSTILE) == "/music/" + terminal_safe(HOSTILE)
    printable = [chr(c) for c in range(0x20, 0x3000) if chr(c).isprintable()]
    assert all(terminal_safe(ch) == ch for ch in printable)
    controls = [chr(c) for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))]
    assert all(terminal_safe(ch).isprintable() and terminal_safe(ch).startswith("\\") for ch in controls)


# ---------------------------------------------------------------------------- labelled folders and manifests


def test_a_manifest_that_is_a_fifo_or_a_device_is_one_line_error(tmp_path):
    from genrify.sources.folder import scan_labelled

    fifo = tmp_path / "manifest.csv"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.csv"
    zero.symlink_to("/dev/zero")
    for path, words in ((fifo, "named pipe"), (zero, "character device")):
        with pytest.raises(DatasetError) as err:
            _finishes(scan_labelled, path)
        assert words in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(DatasetError, match="no such file"):
        scan_labelled(tmp_path / "missing")


def test_a_manifest_lists_a_fifo_track_by_name_and_never_opens_it(tmp_path):
    from genrify.sources.folder import scan_labelled

    _sine_wav(tmp_path / "a.wav")
    os.mkfifo(tmp_path / "b.wav")
    (tmp_path / "m.csv").write_text("path,genre\na.wav,jazz\nb.wav,rock\n")
    tracks = _finishes(scan_labelled, tmp_path / "m.csv")
    assert [(t.path.name, t.genre) for t in tracks] == [("a.wav", "jazz"), ("b.wav", "rock")]


def _bad_corpus(root):
    """Two real clips, and beside them a FIFO, a link to /dev/zero, a huge sparse file and a FIFO with a hostile name."""
    _sine_wav(root / "jazz" / "good.wav", freq=330.0)
    _sine_wav(root / "rock" / "good.wav", freq=880.0)
    os.mkfifo(root / "jazz" / "pipe.wav")
    (root / "rock" / "zero.wav").symlink_to("/dev/zero")
    _huge(root / "rock" / "huge.wav")
    os.mkfifo(root / "jazz" / HOSTILE)
    return root


@pytest.mark.slow
def test_dataset_build_skips_fifos_devices_and_huge_files_with_reasons(tmp_path, run_genrify):
    root = _bad_corpus(tmp_path / "corpus")
    proc = run_genrify("dataset", "build", root, "--out", tmp_path / "my.gdb", "--workers", "1", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "\x1b" not in proc.stdout
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("6 tracks: ") and "2 ok" in lines[0] and "4 error" in lines[0]
    skipped = {line.split(": ", 1)[0].rsplit("/", 1)[-1]: line.split(": ", 1)[1] for line in lines if "skipped" in line}
    assert "named pipe" in skipped["pipe.wav"] and "character device" in skipped["zero.wav"]
    assert "too large" in skipped["huge.wav"]
    assert "named pipe" in skipped[terminal_safe(HOSTILE)]  # the name escaped, on one line


# ---------------------------------------------------------------------------- the library scan


def test_library_scan_refuses_fifos_devices_and_huge_files_with_reasons(tmp_path):
    from genrify.sources.library import LibraryIndex

    root = tmp_path / "music"
    _sine_wav(root / "Band - Song.wav")
    os.mkfifo(root / "pipe.mp3")
    _huge(root / "huge.flac")
    os.mkfifo(root / HOSTILE)
    try:
        os.mknod(root / "device.ogg", stat.S_IFCHR | 0o666, os.makedev(1, 5))  # /dev/zero's numbers, inside the root
        device = True
    except OSError:  # no CAP_MKNOD in this container
        device = False
    with LibraryIndex(tmp_path / "index.sqlite") as index:
        summary = _finishes(index.scan, root)
        assert len(index) == 1
    reasons = {os.path.basename(p): r for p, r in summary.failed}
    assert "named pipe" in reasons["pipe.mp3"] and "named pipe" in reasons[HOSTILE]
    assert "too large" in reasons["huge.flac"]
    if device:
        assert "character device" in reasons["device.ogg"]
    assert summary.added == 1 and summary.indexed == 1


# ---------------------------------------------------------------------------- model files through the commands


@pytest.fixture
def bad_models(tmp_path):
    import struct

    fifo = tmp_path / "fifo.genrify"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.genrify"
    zero.symlink_to("/dev/zero")
    deep = tmp_path / "deep.genrify"
    header = b'{"__metadata__": {"format": "genrify-model", "version": "1"}, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    deep.write_bytes(struct.pack("<Q", len(header)) + header)
    return {"fifo": (fifo, "named pipe"), "zero": (zero, "character device"), "deep": (deep, "nested deeper")}


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["fifo", "zero", "deep"])
def test_predict_and_serve_refuse_a_fifo_device_or_deeply_nested_model_in_one_line(bad_models, kind, tmp_path,
                                                                                  run_genrify):
    model, words = bad_models[kind]
    clip = _sine_wav(tmp_path / "clip.wav")
    for args in (("predict", clip, "--model", model), ("serve", "--model", model, "--port", "1", "--scan", "off")):
        proc = run_genrify(*args, timeout=120)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        [line] = proc.stderr.strip().splitlines()
        assert line.startswith("genrify: error:") and str(model) in line and words in line


# ---------------------------------------------------------------------------- the names file of `genrify tag --names`


def _names_error(path) -> str:
    from genrify.errors import ConfigError
    from genrify.tagging import load_names

    with pytest.raises(ConfigError) as err:
        _finishes(load_names, path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message, message
    return message


def test_a_names_file_nested_50000_deep_is_a_one_line_error(tmp_path):
    """It once ended in a RecursionError traceback; flow and block nesting are both bounded."""
    flow = tmp_path / "flow.yaml"
    flow.write_text("aliases: " + "[" * 50_000 + "]" * 50_000 + "\n")
    assert "nested deeper" in _names_error(flow)
    block = tmp_path / "block.yaml"
    block.write_text("ignore:\n" + "".join(" " * i + "-\n" for i in range(1, 1_200)))  # 1 200 levels, 0.7 MB
    assert "nested deeper" in _names_error(block)


def test_a_names_file_that_is_a_fifo_a_device_or_huge_is_refused_without_reading(tmp_path):
    """A link to /dev/zero once grew to 2.6 GB in 20 s, and a FIFO hung `genrify tag`."""
    os.mkfifo(tmp_path / "names.fifo")
    (tmp_path / "zero.yaml").symlink_to("/dev/zero")
    assert "named pipe" in _names_error(tmp_path / "names.fifo")
    assert "character device" in _names_error(tmp_path / "zero.yaml")
    assert "too large" in _names_error(_huge(tmp_path / "huge.yaml"))
    from genrify.fileio import MAX_SMALL_FILE_BYTES

    (tmp_path / "big.yaml").write_bytes(b"#" * MAX_SMALL_FILE_BYTES + b"\n")  # a plain file just over 1 MiB
    assert "too large" in _names_error(tmp_path / "big.yaml")


def test_names_that_a_terminal_would_act_on_are_refused(tmp_path):
    names = tmp_path / "names.yaml"
    for text in ('aliases: {jazz: "Jazz\\e]0;owned\\a"}\n', 'ignore: ["Pop\\nRock"]\n',
                 'whitelist: ["\\u202eKcor"]\n', "ignore: [" + "x" * 500 + "]\n"):
        names.write_text(text)
        message = _names_error(names)
        assert "\x1b" not in message and "\u202e" not in message and "not a genre name" in message, message
    names.write_text('aliases: {"hip hop": "Hip-Hop", 1990s: Ninéties}\nignore: [Pop]\n')
    from genrify.tagging import load_names

    assert load_names(names).aliases == {"hip hop": "Hip-Hop", "1990s": "Ninéties"}


def test_genrify_tag_refuses_a_deep_or_device_names_file_in_one_line_before_any_work(tmp_path, run_genrify):
    music = tmp_path / "music"
    _sine_wav(music / "a.wav")
    deep = tmp_path / "deep.yaml"
    deep.write_text("aliases: " + "[" * 50_000 + "]" * 50_000 + "\n")
    zero = tmp_path / "zero.yaml"
    zero.symlink_to("/dev/zero")
    for names, words in ((deep, "nested deeper"), (zero, "character device")):
        proc = run_genrify("tag", music, "--names", names, "--index", tmp_path / "index.sqlite", timeout=120)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        [line] = proc.stderr.strip().splitlines()
        assert line.startswith("genrify: error:") and str(names) in line and words in line
        assert not (tmp_path / "index.sqlite").exists()
