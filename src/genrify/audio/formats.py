"""What genrify knows about audio formats, in one place: the extensions it reads
(:data:`AUDIO_EXTENSIONS`), the media type of each (:func:`media_type`), the
signatures that tell audio bytes apart (:func:`sniff_audio`) and those of common
files that are not audio at all (:func:`not_audio_kind`), and the declared media
types that are plainly not audio (:func:`declared_not_audio`)."""

from __future__ import annotations

import os
from pathlib import Path

#: Extensions genrify treats as audio: the one list folder scans (``predict FOLDER``,
#: ``dataset build``, ``library scan``) take, so a file that decodes when named
#: is never skipped in a folder. load_audio decodes each (libsndfile, else FFmpeg).
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".mp4", ".aiff", ".aif", ".au",
                    ".wma", ".webm", ".weba", ".mka", ".caf", ".wv", ".ape", ".mp2", ".ac3", ".m4b", ".amr")

#: The extensions :func:`sniff_audio` can return, in the order genrify looks for
#: a file under each of them (previews, collected tracks); all in :data:`AUDIO_EXTENSIONS`.
SNIFFED_EXTENSIONS = (".mp3", ".m4a", ".aac", ".ogg", ".flac", ".wav")

#: The media type genrify sends with an audio file, by extension; :func:`media_type`
#: asks :mod:`mimetypes` about any other extension.
MEDIA_TYPES = {".mp3": "audio/mpeg", ".m4a": "audio/mp4", ".aac": "audio/aac", ".wav": "audio/wav",
               ".flac": "audio/flac", ".ogg": "audio/ogg", ".oga": "audio/ogg", ".opus": "audio/ogg"}


def media_type(name: str | os.PathLike) -> str:
    """The media type of the file called ``name``, from its extension.

    :data:`MEDIA_TYPES` first, then :mod:`mimetypes`, else ``"application/octet-stream"``.
    """
    import mimetypes

    path = Path(name)
    guessed = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return MEDIA_TYPES.get(path.suffix.lower(), guessed)


def sniff_audio(head: bytes) -> str | None:
    """The file extension (``".mp3"``, ``".m4a"``, …) that ``head`` — a file's first bytes — implies.

    ``None`` when ``head`` does not start like an audio file genrify decodes.
    """
    if head.startswith(b"ID3"):
        return ".mp3"
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return ".m4a"
    if head.startswith(b"OggS"):
        return ".ogg"
    if head.startswith(b"fLaC"):
        return ".flac"
    if len(head) >= 12 and head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return ".wav"
    if len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0:
        # MPEG audio frame sync; layer bits 00 mean an AAC ADTS stream instead.
        return ".aac" if (head[1] & 0x06) == 0 else ".mp3"
    return None


#: Signatures of common non-audio files, refused before any decoder sees them.
_NOT_AUDIO = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
              (b"%PDF", "a PDF document"), (b"PK\x03\x04", "a ZIP archive"), (b"<!DOCTYPE", "an HTML page"),
              (b"<html", "an HTML page"), (b"<?xml", "an XML document"), (b"{", "JSON text"), (b"[", "JSON text"))


def not_audio_kind(head: bytes) -> str | None:
    """What kind of non-audio file ``head`` (a file's first 64 bytes) starts like, or ``None``."""
    stripped = head.lstrip()
    for magic, kind in _NOT_AUDIO:
        if stripped[: len(magic)].lower() == magic.lower():
            return kind
    return "plain text" if _looks_like_text(head) else None


def _looks_like_text(head: bytes) -> bool:
    """Whether ``head`` reads as text: printable UTF-8, or mostly ASCII with a few Latin-1 letters.

    Every audio container starts with binary within its first bytes (sizes, flags,
    frame headers), so a short file of printable characters is text too. An MP3
    frame sync (0xFF) never counts as a Latin-1 letter.
    """
    if not head:
        return False
    # The head may cut a UTF-8 sequence: drop up to 3 trailing bytes that do not decode.
    for cut in range(4):
        try:
            text = head[: len(head) - cut].decode("utf-8")
            break
        except UnicodeDecodeError:
            text = None
    if text and all(c.isprintable() or c in "\r\n\t" for c in text):
        return True
    ascii_printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in head)
    latin_letters = sum(0xA0 <= b < 0xFF for b in head)
    return ascii_printable + latin_letters == len(head) and ascii_printable >= 0.8 * len(head)


#: Declared media types that are plainly not audio, besides every ``text/*`` and ``image/*``.
_NOT_AUDIO_TYPES = ("application/json", "application/xml")


def declared_not_audio(content_type: str | None) -> str | None:
    """The media type ``content_type`` (a ``Content-Type`` value) declares when that is plainly not audio.

    Text, images, JSON and XML: ``"text/plain"`` for ``"text/plain; charset=utf-8"``. ``None`` for
    anything else (audio, ``application/octet-stream``, nothing declared): the bytes judge those.
    """
    ctype = (content_type or "").split(";")[0].strip().lower()
    return ctype if ctype.startswith(("text/", "image/")) or ctype in _NOT_AUDIO_TYPES else None


#: The ID3 frames behind mutagen's easy tag names, for files whose ID3 tags mutagen gives as
#: frames (WAV, AIFF).
ID3_FRAMES = {"artist": "TPE1", "albumartist": "TPE2", "title": "TIT2", "album": "TALB", "genre": "TCON"}

#: The most bytes of tags (pictures included) genrify lets mutagen load in the caller's own
#: process, where it rewrites a file's tags: mutagen holds every tag block whole, and saving
#: copies them again. Reading tags for an index happens in a decoder worker instead.
MAX_TAG_BYTES = 64 * 1024 * 1024


def tag_bytes(path: str | os.PathLike) -> int:
    """The bytes of tags and other metadata mutagen would load from ``path``, from the container's
    headers alone (nothing else is read): ID3v2 at the start (MP3, AAC, and before FLAC), FLAC's
    metadata blocks, MP4's ``moov`` atom, the chunks of WAV and AIFF other than the audio, the
    identification and comment packets of Ogg Vorbis and Opus (pictures ride in the
    comments). 0 for other formats."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(12)
        total = pos = 0
        if head.startswith(b"ID3") and len(head) >= 10:
            pos = 10 + _synchsafe(head[6:10]) + (10 if head[5] & 0x10 else 0)
            total = pos
            f.seek(pos)
            head = f.read(12)
        if head.startswith(b"fLaC"):
            return total + _walk(f, size, pos + 4, header=4, length=lambda h: int.from_bytes(h[1:4], "big"),
                                 last=lambda h: bool(h[0] & 0x80))
        if len(head) >= 12 and head[4:8] == b"ftyp":
            return total + _walk(f, size, pos, header=8, length=_atom_length(f), counts=lambda h: h[4:8] == b"moov")
        if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
            return total + _walk(f, size, 12, header=8, length=lambda h: int.from_bytes(h[4:8], "little"), pad=True,
                                 counts=lambda h: h[:4] != b"data")
        if head.startswith(b"FORM") and head[8:12] in (b"AIFF", b"AIFC"):
            return total + _walk(f, size, 12, header=8, length=lambda h: int.from_bytes(h[4:8], "big"), pad=True,
                                 counts=lambda h: h[:4] != b"SSND")
        if head.startswith(b"OggS"):
            return total + _ogg_packets(f, size, pos, packets=2)
        return total


def _ogg_packets(f, size: int, pos: int, *, packets: int) -> int:
    """The bytes of the first ``packets`` packets of the first logical stream of the Ogg file ``f``, from its
    page headers alone (27 bytes and a lacing table per page; the page bodies are skipped): a packet goes
    on over pages until a lacing value under 255 ends it."""
    total = done = 0
    serial = None
    while done < packets and pos + 27 <= size:
        f.seek(pos)
        h = f.read(27)
        if len(h) < 27 or not h.startswith(b"OggS"):
            break
        lacing = f.read(h[26])
        if len(lacing) < h[26]:
            break
        serial = serial or h[14:18]
        if h[14:18] == serial:  # another stream's pages interleaved with ours do not count
            for value in lacing:
                total += value
                done += value < 255
                if done == packets:
                    break
        pos += 27 + len(lacing) + sum(lacing)
    return total


def _synchsafe(b: bytes) -> int:
    return (b[0] & 0x7F) << 21 | (b[1] & 0x7F) << 14 | (b[2] & 0x7F) << 7 | (b[3] & 0x7F)


def _atom_length(f):
    """An MP4 atom's length from its 8-byte header (a 64-bit length follows a length of 1; 0: to the end)."""
    def length(h: bytes) -> int:
        n = int.from_bytes(h[:4], "big")
        if n == 1:
            n = int.from_bytes(f.read(8), "big") - 8
        return (n - 8) if n >= 8 else (1 << 62)
    return length


def _walk(f, size: int, pos: int, *, header: int, length, last=lambda h: False, counts=lambda h: True,
          pad: bool = False) -> int:
    """Sum the lengths of the blocks from ``pos`` on that ``counts`` (each ``header`` bytes, then ``length(h)``)."""
    total = 0
    while pos + header <= size:
        f.seek(pos)
        h = f.read(header)
        if len(h) < header:
            break
        start = f.tell()  # after a 64-bit MP4 length too
        n = min(length(h), size - start)
        if counts(h):
            total += n
        pos = start + n + (n & 1 if pad else 0)
        if last(h):
            break
    return total
