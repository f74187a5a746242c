"""Files on the way in and out: bounded reads of regular files, content hashes, atomic writes, terminal-safe names,
and where genrify keeps its own files (:func:`default_data_dir`).

Every file genrify writes appears whole or not at all (:func:`atomic_path`).
Every file it reads whole is first checked to be a regular file of at most
:data:`MAX_FILE_BYTES` (:func:`read_regular`), so a FIFO, a device or a huge
file is refused with a one-line reason instead of hanging or filling memory.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import stat
import tempfile
import time
from pathlib import Path

from genrify.errors import WriteError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; on success it is renamed over ``path``.

    On any exception the temporary file is removed and ``path`` is untouched. A
    folder that cannot be created or written, or a folder in the place of
    ``path``, is a :class:`~genrify.errors.WriteError` naming ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{_short(path.name)}{TEMP_MARK}", suffix=".part", dir=path.parent)
    except OSError as exc:
        raise _write_error(path, exc) from None
    os.close(fd)
    # mkstemp creates the file 0600; give the result the permissions a plain open() would.
    os.chmod(tmp, 0o666 & ~_UMASK)
    try:
        yield Path(tmp)
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise _write_error(path, exc) from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


#: What marks a temporary file of :func:`atomic_path`: ``.<name>.genrify-<8 random>.part``.
TEMP_MARK = ".genrify-"
_TEMP_NAME = re.compile(r"\..*\.genrify-[a-z0-9_]{8}\.part", re.DOTALL)
#: A temporary file untouched for this long (seconds) belongs to a run that was killed.
STALE_AFTER_S = 60.0


def _short(name: str) -> str:
    # The temporary name adds 23 bytes; a name near the 255-byte limit would make mkstemp fail.
    raw = os.fsencode(name)
    return name if len(raw) <= 200 else os.fsdecode(raw[:200])


def is_temporary(name: str) -> bool:
    """Whether the file name ``name`` is one of :func:`atomic_path`'s temporary files."""
    return _TEMP_NAME.fullmatch(name) is not None


def remove_stale_temporaries(folder: str | os.PathLike, *, older_than: float = STALE_AFTER_S) -> list[Path]:
    """Remove the temporary files that killed runs left in ``folder``; returns those removed.

    Only regular files (not links) named like :func:`atomic_path`'s and not
    modified for ``older_than`` seconds (default :data:`STALE_AFTER_S`) are
    removed: a younger one may belong to a run still writing. Never raises.
    """
    removed = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not is_temporary(entry.name):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(st.st_mode) and now - st.st_mtime >= older_than:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue  # gone already, or not ours to remove
    return removed


def _write_error(path: Path, exc: OSError) -> WriteError:
    if exc.errno in (errno.EEXIST, errno.ENOTDIR) and not path.parent.is_dir():
        return WriteError(f"{path}: cannot write (a file is in the place of a folder on its path)")
    return WriteError(f"{path}: cannot write ({exc.strerror or type(exc).__name__})")


def _read_umask() -> int:
    # Read once at import: os.umask is process-wide, so changing it later could race other threads.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:  # e.g. the disk is full
            raise _write_error(Path(path), exc) from None


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


# ---------------------------------------------------------------------------- bounded reads

#: The largest file genrify reads: a song, a model file or a manifest (2 GiB). An hour of
#: 48 kHz 24-bit stereo PCM is 1 GiB; anything larger is refused rather than read into memory.
MAX_FILE_BYTES = 2 * 1024**3

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _size_text(n: int) -> str:
    return f"{n / 1024**3:.1f} GiB" if n >= 1024**3 else f"{n / 1024**2:.1f} MiB"


def _check_regular(st: os.stat_result, max_bytes: int) -> None:
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a plain file")
        code = errno.EISDIR if stat.S_ISDIR(st.st_mode) else errno.EINVAL
        raise OSError(code, f"not a regular file but {kind}")
    if st.st_size > max_bytes:
        raise OSError(errno.EFBIG, f"too large ({_size_text(st.st_size)}; the limit is {_size_text(max_bytes)})")


def stat_regular(path: str | os.PathLike, *, max_bytes: int = MAX_FILE_BYTES) -> os.stat_result:
    """``os.stat(path)`` (links followed) when ``path`` is a regular file of at most ``max_bytes``.

    Otherwise raises :class:`OSError` whose ``strerror`` is a one-line reason
    ("not a regular file but a named pipe (FIFO)", "too large (…)"); a missing
    file raises as ``os.stat`` does. Nothing is opened, so a FIFO cannot block.
    """
    st = os.stat(path)
    _check_regular(st, max_bytes)
    return st


@contextlib.contextmanager
def open_regular(path: str | os.PathLike, *, max_bytes: int = MAX_FILE_BYTES):
    """Open the regular file ``path`` for reading in binary, as a context manager yielding the file object.

    Refused before anything is opened, and again on the open file (a FIFO swapped
    in after the check), with :class:`OSError` whose ``strerror`` is a one-line
    reason (see :func:`stat_regular`); so a FIFO never blocks and a device is never
    read.
    """
    stat_regular(path, max_bytes=max_bytes)
    # O_NONBLOCK: should a FIFO be swapped in after the stat, opening it returns at once, and fstat refuses it.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        _check_regular(st, max_bytes)
        os.set_blocking(fd, True)
        yield f


def read_regular(path: str | os.PathLike, *, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The content of the regular file ``path``, at most ``max_bytes`` (default :data:`MAX_FILE_BYTES`).

    Raises :class:`OSError` with a one-line ``strerror`` for a FIFO, a device, a
    folder or a file over the limit (see :func:`stat_regular`), without blocking.
    """
    with open_regular(path, max_bytes=max_bytes) as f:
        size = os.fstat(f.fileno()).st_size
        data = f.read(size + 1)  # one allocation of the stated size; the extra byte tells growth
        if len(data) > size:  # the file grows while read: read on, still bounded
            data += f.read(max_bytes + 1 - len(data))
    if len(data) > max_bytes:
        raise OSError(errno.EFBIG, f"too large (over the limit of {_size_text(max_bytes)})")
    return data


#: Bytes read at a time by :func:`file_digest`.
_DIGEST_CHUNK = 1 << 20


def file_digest(path: str | os.PathLike, *, max_bytes: int = MAX_FILE_BYTES) -> str:
    """The content hash of the regular file ``path``: BLAKE2b-128 of all its bytes, 32 hex digits.

    The whole file is hashed, tags included, 1 MiB at a time. Raises :class:`OSError`
    as :func:`read_regular` does (a FIFO, a device, a folder or a file over
    ``max_bytes`` has a one-line ``strerror``), without blocking; a missing file
    raises as ``os.stat`` does.
    """
    h = hashlib.blake2b(digest_size=16)
    with open_regular(path, max_bytes=max_bytes) as f:
        while chunk := f.read(_DIGEST_CHUNK):
            h.update(chunk)
    return h.hexdigest()


#: The largest small file genrify reads whole and parses: a names file, a cached decision (1 MiB).
MAX_SMALL_FILE_BYTES = 1024**2


def read_small_text(path: str | os.PathLike, *, max_bytes: int = MAX_SMALL_FILE_BYTES) -> str:
    """The UTF-8 text of a small regular file ``path`` (a settings file, a cache): at most ``max_bytes``.

    Raises :class:`OSError` with a one-line ``strerror`` as :func:`read_regular` does (a FIFO, a device,
    a folder, a file over the limit), and :class:`UnicodeDecodeError` for bytes that are not UTF-8.
    """
    return read_regular(path, max_bytes=max_bytes).decode("utf-8")


def default_data_dir() -> Path:
    """genrify's data folder (the results index and tag journal, the demo library): ``$GENRIFY_DATA_DIR``,
    else the platform's user data folder (platformdirs: ``~/.local/share/genrify`` on Linux)."""
    if os.environ.get("GENRIFY_DATA_DIR"):
        return Path(os.environ["GENRIFY_DATA_DIR"]).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("genrify", appauthor=False))


# ---------------------------------------------------------------------------- names shown on a terminal

#: Characters that a terminal would act on or that would split a line: C0/C1 controls, DEL,
#: line/paragraph separators, bidirectional overrides (they can make a name read backwards),
#: and lone surrogates (undecodable bytes of a file name, which print() cannot encode).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match) -> str:
    ch = match.group()
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's stand-in for the undecodable byte code - 0xDC00
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_safe(text: str | os.PathLike, *, lines: bool = False) -> str:
    """``text`` (a path, or a line naming one) with control characters escaped for a terminal.

    A newline becomes ``\\n``, ESC ``\\x1b``, an undecodable file-name byte ``\\xff``
    and so on, so a file name can neither retitle or recolour the terminal nor
    split a line of output. Printable text, including non-ASCII, is unchanged.
    With ``lines=True`` the text's own ``\\n`` line breaks are kept (for a
    multi-line report whose lines name files).
    """
    text = os.fspath(text) if isinstance(text, os.PathLike) else str(text)
    if lines:
        return "\n".join(_UNSAFE.sub(_escape, line) for line in text.split("\n"))
    return _UNSAFE.sub(_escape, text)


# ---------------------------------------------------------------------------- names stored in SQLite


def stored_path(path: str | os.PathLike) -> str | bytes:
    """``path`` as every SQLite file genrify writes stores it (results index, tag journal, library and
    dataset indexes): the text itself when it is valid UTF-8, else the name's own bytes
    (:func:`os.fsencode`), which SQLite keeps as a BLOB.

    sqlite3 cannot encode a name that is not UTF-8 (``x\\xe9.mp3``, read by Python as a
    lone surrogate); its bytes store it losslessly. Every UTF-8 name stays the text it
    always was, so databases written before read and match as they did, and a BLOB never
    equals a TEXT in SQLite, so the two forms cannot collide. :func:`path_from_stored` reverses it.
    """
    text = os.fspath(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(text)
    return text


def path_from_stored(value: str | bytes) -> str:
    """The path that :func:`stored_path` stored as ``value`` (a column read back), as a ``str``."""
    return os.fsdecode(value) if isinstance(value, bytes) else value


def name_as_text(name: str) -> str:
    """A file name (or text taken from one: an artist, a title) as plain text for a text column or a
    page: a byte that is not UTF-8 becomes U+FFFD, the replacement character. Lossy, unlike
    :func:`stored_path`: for names shown, never for names opened."""
    return os.fsencode(name).decode("utf-8", "replace")
