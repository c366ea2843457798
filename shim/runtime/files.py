"""Reading a file that someone else may have replaced with a FIFO, a device or a huge file.

    from shim.runtime.files import read_regular, NotReadable
    try:
        data = read_regular(path, limit=1 << 20)
    except NotReadable as exc:
        exc.reason   # "is a FIFO (named pipe), not a regular file", "is larger than 1 MiB", ...

Every file wsgi-shim reads at start-up or for a command goes through here: config.toml, secret
files, the maintenance page, the debug token file, the app log and the start records. Opening
a FIFO for reading blocks until a writer appears (forever, at every process start) and a device
such as /dev/zero never ends, so the file is opened with O_NONBLOCK, must be a regular file
(fstat on the open descriptor, so a swap after a check cannot fool it) and is read with a limit.
Standard library only; nothing imported that a healthy start does not already have.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

KIB = 1024
MIB = 1024 * KIB


class NotReadable(OSError):
    """The file cannot be used: ``reason`` says why in words (for a Problem's text)."""

    def __init__(self, path: str | Path, reason: str, errno_: int = 0) -> None:
        super().__init__(errno_, reason, str(path))
        self.path = str(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path} {self.reason}"


def kind_of(mode: int) -> str:
    """What a non-regular file is, in words."""
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


def _size_text(n: int) -> str:
    return f"{n // MIB} MiB" if n >= MIB and n % MIB == 0 else (
        f"{n // KIB} KiB" if n >= KIB and n % KIB == 0 else f"{n} bytes")


def open_regular(path: str | Path) -> int:
    """An O_RDONLY descriptor of path, which must be a regular file. Never blocks on a FIFO.

    Raises NotReadable (an OSError) naming what the file is, or the OSError of open().
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotReadable(path, f"is {kind_of(st.st_mode)}, not a regular file")
        # Reads of a regular file never block; clear the flag so callers get normal semantics.
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: str | Path, limit: int, truncate: bool = False) -> bytes:
    """The bytes of regular file `path`, at most `limit` of them.

    A larger file raises NotReadable ("is larger than ...") unless truncate=True, which returns
    its first `limit` bytes. Other failures raise the OSError of open() (FileNotFoundError,
    PermissionError, IsADirectoryError...) or NotReadable for a FIFO, device or socket.
    """
    fd = open_regular(path)
    try:
        data = _read_at_most(fd, limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        if not truncate:
            raise NotReadable(path, f"is larger than {_size_text(limit)}, the most wsgi-shim reads")
        data = data[:limit]
    return data


def read_tail(path: str | Path, limit: int) -> bytes:
    """The last `limit` bytes of regular file `path` (for logs and records that only grow)."""
    fd = open_regular(path)
    try:
        size = os.fstat(fd).st_size
        os.lseek(fd, max(0, size - limit), os.SEEK_SET)
        return _read_at_most(fd, limit)
    finally:
        os.close(fd)


def json_lines(data: bytes, key: str | None = None) -> list[dict]:
    """The JSON objects of a JSON-lines file's DATA, in order; a torn or foreign line (or, with
    KEY, an object without a string KEY) is skipped."""
    import json

    out = []
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict) and (key is None or isinstance(item.get(key), str)):
            out.append(item)
    return out


def _read_at_most(fd: int, limit: int) -> bytes:
    """Up to `limit` bytes from fd, in chunks of at most 1 MiB."""
    chunks = []
    left = limit
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def why_not(exc: OSError) -> str:
    """An OSError from the functions above, in words: 'is a FIFO ...', 'permission denied'."""
    if isinstance(exc, NotReadable):
        return exc.reason
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not a regular file"
    return f"cannot be read ({exc.strerror or exc})"
