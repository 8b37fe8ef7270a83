"""Files the package writes and checks: atomic writes, sha256 digests, output paths.

Used by the dataset cache, checkpoints, profiles, the benchmark's reports and the
site builder, so that every file a user is handed is either whole or untouched.
"""

import hashlib
import os
import stat
import tempfile
from pathlib import Path

from .errors import MicrogptError


def sha256(data):
    """Hex sha256 digest of `data` (bytes)."""
    return hashlib.sha256(data).hexdigest()


def current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temporary_file(folder, name):
    """(fd, path) of a new hidden file beside `name` in `folder`, removed by the caller."""
    return tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")


def write_atomic(path, data):
    """Write bytes to `path` through a temporary file, so a reader never sees half a file.

    A symlink stays a symlink (its target is replaced); the file keeps the mode it had,
    or gets the usual mode for a new file (0666 less the umask), not mkstemp's 0600.
    """
    path = Path(os.path.realpath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~current_umask()
    fd, tmp = temporary_file(path.parent, path.name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            os.fchmod(f.fileno(), mode)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


class OutputPathError(MicrogptError):
    """An output path that cannot be written; the message names the flag and the fix."""


def check_output_path(path, what):
    """Fail before the work, not after it, when `path` (given by `what`) cannot be written.

    The folder is tried for real (a temporary file is made and removed): permission
    bits say nothing for root, a read-only mount or /proc.
    """
    text = str(path)
    if not text.strip():
        raise OutputPathError(f"{what} is empty; give a file name")
    try:
        if text.endswith(("/", os.sep)) or Path(path).is_dir():
            raise OutputPathError(f"{what} {path}: is a directory; give a file name")
        target = Path(os.path.realpath(path))
        if target.exists() and not target.is_file():
            raise OutputPathError(f"{what} {path}: is not a regular file; give a file name")
        folder = target.parent
        if not folder.exists():
            raise OutputPathError(f"{what} {path}: folder {folder} does not exist; create it first")
        if not folder.is_dir():
            raise OutputPathError(f"{what} {path}: {folder} is a file, not a folder")
        fd, probe = temporary_file(folder, target.name)
    except OSError as e:  # no permission, a read-only file system, a name too long
        raise OutputPathError(f"{what} {path}: cannot be written ({e.strerror or e})") from None
    os.close(fd)
    os.unlink(probe)
