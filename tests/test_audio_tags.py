"""Tags under a memory bound: read in a decoder worker for an index, measured from the headers before a rewrite.

Real FLAC, MP3, M4A and WAV files with real pictures (written here, nothing committed), real decoder
workers with a lowered address-space limit, and ``genrify library scan`` in a subprocess.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from conftest import genrify_env
from genrify.sources.synthetic import generate_clip


#: A decoder worker's address-space limit lowered for the tests (GENRIFY_DECODER_ADDRESS_SPACE): room for
#: the worker itself (its libraries map well under 160 MB) and a file's ordinary tags, not for 192 MB of pictures.
TAG_TEST_ADDRESS_SPACE = 200 * 2**20


def _flac_with_pictures(path: Path, *, pictures: int, artist: str = "Pic Artist", title: str = "Pic Song") -> Path:
    """A 1 s tagged FLAC carrying ``pictures`` cover images of 16 MB each (the most one FLAC block holds),
    written block by block as a tagger would have saved them."""
    import struct

    from mutagen.flac import FLAC

    sf.write(path, generate_clip("jazz", seed=3, sr=22050, duration=1.0), 22050, format="FLAC")
    tags = FLAC(path)
    tags["artist"], tags["title"] = artist, title
    tags.save()
    data = path.read_bytes()
    blocks, pos = [], 4
    while True:  # the metadata blocks: 1 byte flag + type, 3 bytes length
        flag, length = data[pos], int.from_bytes(data[pos + 1 : pos + 4], "big")
        blocks.append((flag & 0x7F, data[pos + 4 : pos + 4 + length]))
        pos += 4 + length
        if flag & 0x80:
            break
    mime, size = b"image/jpeg", 2**24 - 1 - 42
    picture_head = struct.pack(">II", 3, len(mime)) + mime + struct.pack(">IIIIII", 0, 600, 600, 24, 0, size)
    with open(path, "wb") as f:
        f.write(b"fLaC")
        for kind, body in blocks:
            f.write(bytes([kind]) + len(body).to_bytes(3, "big") + body)
        for i in range(pictures):
            last = 0x80 if i == pictures - 1 else 0
            f.write(bytes([last | 6]) + (len(picture_head) + size).to_bytes(3, "big") + picture_head)
            f.write(b"\xff\xd8\xff" + bytes(size - 3))
        f.write(data[pos:])
    return path


def test_tags_are_read_in_a_worker_within_its_memory_limit(tmp_path):
    """192 MB of pictures meet the worker's address-space limit (one file's error); ordinary tags read as before."""
    from genrify.audio.isolation import DecoderPool
    from genrify.errors import DatasetError

    heavy = _flac_with_pictures(tmp_path / "heavy.flac", pictures=12)
    light = _flac_with_pictures(tmp_path / "light.flac", pictures=1, artist="Light Artist")
    pool = DecoderPool(address_space=TAG_TEST_ADDRESS_SPACE)
    try:
        with pytest.raises(DatasetError, match=r"^heavy\.flac: needs more memory to read its tags than a decoder"):
            pool.read_tags(heavy, label="heavy.flac")
        tags = pool.read_tags(light, label="light.flac")
        assert tags["artist"] == "Light Artist" and tags["title"] == "Pic Song" and abs(tags["duration"] - 1) < 0.01
    finally:
        pool.close()


def test_library_scan_skips_a_file_whose_tags_need_too_much_memory(tmp_path):
    """``library scan`` reads tags in decoder workers: the picture-laden file is one skipped line, the rest indexed."""
    music = tmp_path / "music"
    music.mkdir()
    heavy = _flac_with_pictures(music / "heavy.flac", pictures=12)
    _flac_with_pictures(music / "light.flac", pictures=1, artist="Light Artist")
    env = {**genrify_env(), "GENRIFY_DECODER_ADDRESS_SPACE": str(TAG_TEST_ADDRESS_SPACE)}
    proc = subprocess.run([sys.executable, "-m", "genrify", "library", "scan", str(music), "--db",
                           str(tmp_path / "library.sqlite")], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    assert f"skipped {heavy}: needs more memory to read its tags than a decoder may use" in proc.stderr.splitlines()
    assert "1 playable tracks" in proc.stdout, proc.stdout


@pytest.mark.parametrize("fmt", ["mp3", "m4a", "wav", "flac", "ogg"])
def test_tag_bytes_measures_pictures_from_the_headers(tmp_path, fmt):
    """A 2 MB cover counts in every container whose tags genrify rewrites; the audio itself does not."""
    from genrify.audio.formats import tag_bytes
    from genrify.sources.synthetic import encode_tagged

    path = tmp_path / f"song.{fmt}"
    encode_tagged(path, generate_clip("jazz", seed=1, sr=22050, duration=3.0), sr=22050, fmt=fmt, artist="A",
                  title="T")
    bare = tag_bytes(path)
    assert bare < 64 * 1024 or fmt == "m4a" and bare < path.stat().st_size
    cover = b"\xff\xd8\xff" + bytes(2 * 2**20)
    counted = len(cover)
    if fmt == "m4a":
        from mutagen.mp4 import MP4, MP4Cover

        tags = MP4(path)
        tags["covr"] = [MP4Cover(cover, imageformat=MP4Cover.FORMAT_JPEG)]
    elif fmt == "flac":
        from mutagen.flac import FLAC, Picture

        tags, picture = FLAC(path), Picture()
        picture.type, picture.mime, picture.data = 3, "image/jpeg", cover
        tags.add_picture(picture)
    elif fmt == "ogg":  # a comment holding the picture block in base64, as taggers write covers into Ogg
        import base64

        from mutagen.flac import Picture
        from mutagen.oggvorbis import OggVorbis

        tags, picture = OggVorbis(path), Picture()
        picture.type, picture.mime, picture.data = 3, "image/jpeg", cover
        tags["metadata_block_picture"] = [base64.b64encode(picture.write()).decode("ascii")]
        counted = len(cover) * 4 // 3  # the size it takes in base64
    else:
        import mutagen
        from mutagen.id3 import APIC

        tags = mutagen.File(path)
        if tags.tags is None:
            tags.add_tags()
        tags.tags.add(APIC(encoding=3, mime="image/jpeg", type=3, desc="cover", data=cover))
    tags.save()
    assert counted <= tag_bytes(path) - bare < counted + 64 * 1024


def test_tags_too_large_to_rewrite_are_refused_before_mutagen_loads_them(tmp_path):
    """``predict --write-tags`` / ``genrify tag``: a file with 80 MB of pictures is one line, left untouched."""
    from genrify.errors import TagError
    from genrify.sources.tags import read_genres, write_genre
    from genrify.tagging.journal import TagJournal

    heavy = _flac_with_pictures(tmp_path / "heavy.flac", pictures=5)
    before = heavy.stat()
    with pytest.raises(TagError, match=r"heavy\.flac: its tags take 80 MB \(pictures\?\), more than the 64 MB"):
        read_genres(heavy)
    with TagJournal(path=tmp_path / "journal.sqlite") as journal, pytest.raises(TagError, match="its tags take 80 MB"):
        write_genre(heavy, "Jazz", journal=journal)
    after = heavy.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no copy left beside it
    light = _flac_with_pictures(tmp_path / "light.flac", pictures=1)
    with TagJournal(path=tmp_path / "journal.sqlite") as journal:
        assert write_genre(light, "Jazz", journal=journal) == ["Jazz"]
