"""Files the package reads and writes: capped reads, atomic writes, sha256, output paths.

Used by the dataset cache, checkpoints, profiles, the benchmark's record and reports,
and the site builder, so that every file a user is handed is either whole or
untouched, and every file a user names is read within a limit or refused in one line.
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


def read_capped(path, max_bytes, error, kind, given_by=None, too_big=""):
    """The bytes of `path`, a file the user named, or `error` (a `MicrogptError` class)
    with one line naming the file and the fix. At most `max_bytes` are read: a device
    or a pipe (/dev/zero) has no size and no end. `kind` is what the file should be
    ("a names file"); `given_by`, the flag or variable that named it, goes into the fix;
    `too_big` is added to the message about a larger file (how to make it smaller)."""
    check = f"; check the path given to {given_by}" if given_by else ""
    give = f"give {given_by} " if given_by else "give "
    larger = f"{path}: larger than {max_bytes >> 20} MiB{too_big}"
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size > max_bytes:  # refused unread
                raise error(larger)
            raw = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise error(f"{path}: no such file{check}") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory; {give}the path of {kind}") from None
    except OSError as e:
        permissions = f"{check} and its permissions" if given_by else ""
        raise error(f"{path}: cannot be read ({e.strerror or e}){permissions}") from None
    if len(raw) > max_bytes:
        raise error(larger)
    return raw


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
