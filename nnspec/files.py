"""Files in and out, for every module that reads or writes one: atomic
writes, the checks made before a file is opened, and file errors. A leaf:
it imports nothing of nnspec's but errors.py."""
from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

from .errors import Diagnostic, SpecError

MAX_SPEC_BYTES = 16 * 1024 * 1024     # a spec is text a person wrote; /dev/zero is not one


def file_error(file, message: str) -> SpecError:
    return SpecError([Diagnostic(str(file), 0, 0, message)])


def not_readable(path) -> str | None:
    """Why `path` cannot be read as a data, weights or spec file, or None.
    Checked before opening: opening a FIFO blocks until someone writes to
    it, and a device such as /dev/zero never ends."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "no such file"
    except OSError as e:
        return e.strerror or str(e)
    if stat.S_ISDIR(mode):
        return "is a folder; expected a file"
    if not stat.S_ISREG(mode):
        return "is not a regular file (a pipe or a device); expected a file on disk"
    return None


def folder_problem(folder) -> str | None:
    """Why files could not be written into `folder` (made if missing), or None."""
    for p in (Path(folder), *Path(folder).parents):
        if p.exists():
            if not p.is_dir():
                return f"{p} is a file; expected a folder"
            if not os.access(p, os.W_OK | os.X_OK):
                return f"cannot write in {p}"
            return None
    return None


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path, data: bytes) -> None:
    """Write a whole file or nothing: a temporary file beside it, then rename.
    The file gets the mode an ordinary `open` would give it (0666 less the
    umask; mkstemp's own 0600 would hide it from the rest of a group)."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder; expected a file name", str(path))
    problem = folder_problem(path.parent)
    if problem:
        raise OSError(errno.EINVAL, problem, str(path))        # a file on the way, or no permission
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
