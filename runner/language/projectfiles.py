"""Read a project's own files, and nothing else, safely.

Journeys and templates are written by marketers and checked out from git,
where a symlink is a file like any other: a template linked to an env file
mailed an SMTP password, a FIFO in ``journeys/`` hung validate, a link to
``/dev/zero`` exhausted memory and a link loop gave a traceback. A project
file is therefore read only when, with every link resolved, it is a regular
file inside its folder (the project, or ``templates/`` for templates) and at
most ``limit`` bytes; it is opened without blocking, so a FIFO swapped in
after the check cannot hang the reader either.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from runner.language.yamlsource import MAX_BYTES


class UnsafeFile(Exception):
    """A project file that must not be read; ``code`` is its diagnostic code."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))


def home_of(path: Path, folder: Path) -> Path:
    """The folder ``path`` must stay inside: ``folder`` for a file under it, else the
    file's own folder (a file named on the command line, outside the project)."""
    absolute, home = Path(os.path.abspath(path)), Path(os.path.abspath(folder))
    return home if absolute.is_relative_to(home) else absolute.parent


def resolve_inside(path: Path, root: Path) -> Path:
    """``path`` with every link resolved; :class:`UnsafeFile` unless it stays inside ``root``."""
    try:
        real = Path(os.path.realpath(path, strict=True))
    except FileNotFoundError:
        raise UnsafeFile("file.missing", f"{path} does not exist (or is a link to nothing)") from None
    except OSError as error:  # ELOOP: a link loop; EACCES
        raise UnsafeFile("file.unreadable", f"cannot resolve {path}: {error.strerror or error}") from None
    home = Path(os.path.realpath(root))
    if real != home and not real.is_relative_to(home):
        raise UnsafeFile("file.outside", f"{path} leads to {real}, outside {home.name}/; "
                                         "only files inside the project are read")
    return real


def read_inside(path: Path, root: Path, limit: int = MAX_BYTES) -> bytes:
    """The bytes of ``path`` if it is a regular file inside ``root`` of at most ``limit`` bytes."""
    real = resolve_inside(path, root)
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as error:  # ELOOP: replaced by a link since it was resolved
        raise UnsafeFile("file.unreadable", f"cannot read {path}: {error.strerror or error}") from None
    try:
        info = os.fstat(fd)
        kind = next((name for test, name in _KINDS if test(info.st_mode)), None)
        if kind is not None or not stat.S_ISREG(info.st_mode):
            raise UnsafeFile("file.not-regular", f"{path} is {kind or 'not a regular file'}; only regular files are read")
        if info.st_size > limit:
            raise UnsafeFile("file.too-large", f"{path} is {info.st_size:,} bytes; the limit is {limit:,}")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(limit + 1)
    except OSError as error:
        raise UnsafeFile("file.unreadable", f"cannot read {path}: {error.strerror or error}") from None
    finally:
        os.close(fd)
    if len(data) > limit:  # grew after the check
        raise UnsafeFile("file.too-large", f"{path} is over {limit:,} bytes")
    return data
