"""Files the package reads and writes: capped reads, atomic writes, sha256, output paths.

Used by the dataset cache, checkpoints, profiles, the benchmark's record and reports,
and the site builder, so that every file a user is handed is either whole or
untouched, and every file a user names is read within a limit or refused in one line.
A file is replaced only as a shell's `>` would be allowed to write it, and keeps its
mode, owner and group; an output that is the command's own stdout or stderr is refused.
"""

import errno
import hashlib
import json
import os
import re
import stat
import sys
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
    """(fd, path) of a new hidden file beside `name` in `folder`, removed by the caller.

    Its name starts with at most 32 characters of `name`: a name that is legal (up to
    255 bytes) must not become too long by the temporary's prefix and suffix.
    """
    return tempfile.mkstemp(dir=folder, prefix=f".{name[:32]}.", suffix=".tmp")


def why_protected(st):
    """Why the existing file of stat `st` must not be replaced, or None.

    Write-protected means what a shell's `>` would refuse: a file this process may not
    write. Root may write any file, yet a file with no write permission for anyone (mode
    0444, `chmod a-w`) was protected on purpose, and a checkpoint or a report has no
    reason to override that: it is refused for root too. And a file is replaced only if
    its owner and group can be given back (root can; a user only for a file of their own,
    in one of their groups): a replaced file never changes hands.
    """
    if not st.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        return "is write-protected (no write permission); chmod u+w it first, or pick another name"
    euid = os.geteuid() if hasattr(os, "geteuid") else None
    if euid in (None, 0):
        return None
    if st.st_uid != euid:
        return (
            f"belongs to another user (uid {st.st_uid}) and would become yours; pick another name"
        )
    if st.st_gid != os.getegid() and st.st_gid not in os.getgroups():
        return (
            f"has a group you are not in (gid {st.st_gid}), which would change; pick another name"
        )
    return None


def existing_target(path):
    """(real path, stat) of the file that writing `path` replaces; stat None when new."""
    real = Path(os.path.realpath(path))
    try:
        return real, real.stat()
    except (FileNotFoundError, NotADirectoryError):
        return real, None


class NotReplaceable(PermissionError):
    """A file `write_atomic` leaves alone; the message says why and what to do."""


def check_writable(real, st):
    """A `NotReplaceable` unless the file `real` (stat `st`) may be replaced: write-
    protected or not ours to re-own (`why_protected`), or not writable (the access check
    also sees a read-only mount and an immutable file, which bind root too)."""
    if st is None:
        return
    why = why_protected(st)
    if why is None and hasattr(os, "geteuid"):
        effective = os.access in os.supports_effective_ids
        if not os.access(real, os.W_OK, effective_ids=effective):
            why = "cannot be written (Permission denied)"
    if why:
        raise NotReplaceable(errno.EACCES, why, str(real))


def write_atomic(path, data):
    """Write bytes to `path` through a temporary file, so a reader never sees half a file.

    A symlink stays a symlink (its target is replaced); the file keeps the mode, owner
    and group it had, or gets the usual mode for a new file (0666 less the umask), not
    mkstemp's 0600. A file that may not be replaced so (`check_writable`) is left as it
    is, with a `NotReplaceable` error.
    """
    path, st = existing_target(path)
    check_writable(path, st)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = stat.S_IMODE(st.st_mode) if st else 0o666 & ~current_umask()
    fd, tmp = temporary_file(path.parent, path.name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if st and hasattr(os, "fchown"):  # owner first: a chown clears setuid bits
                keep_owner(f.fileno(), st)
            os.fchmod(f.fileno(), mode)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def keep_owner(fd, st):
    """Give the new file `fd` the owner and group of the file it replaces (`st`)."""
    new = os.fstat(fd)
    if (new.st_uid, new.st_gid) != (st.st_uid, st.st_gid):
        try:
            os.fchown(fd, st.st_uid, st.st_gid)
        except OSError as e:
            raise NotReplaceable(
                e.errno, f"its owner and group cannot be kept ({e.strerror})"
            ) from None


class OutputPathError(MicrogptError):
    """An output path that cannot be written; the message names the flag and the fix."""


def standard_stream(st):
    """ "standard output" or "standard error" when the file of stat `st` is one of them
    (same device and inode as fd 1 or 2), else None. A stream the process started
    without (`>&-`; see `errors.hold_standard_streams`) is no file a path can name."""
    for fd, stream, name in ((1, sys.stdout, "standard output"), (2, sys.stderr, "standard error")):
        if stream is None or getattr(stream, "closed_stream", False):
            continue
        try:
            same = os.fstat(fd)
        except OSError:
            continue
        if (same.st_dev, same.st_ino) == (st.st_dev, st.st_ino):
            return name
    return None


def check_output_path(path, what):
    """Fail before the work, not after it, when `path` (given by `what`) cannot be written.

    The folder is tried for real (a temporary file is made and removed): permission
    bits say nothing for root, a read-only mount or /proc. A file that is the process's
    stdout or stderr (`--save /dev/stdout > run.log`, `--save out.json > out.json`) is
    refused, since writing it would replace the log; so is a file `write_atomic` would
    not replace (`check_writable`).
    """
    text = str(path)
    if not text.strip():
        raise OutputPathError(f"{what} is empty; give a file name")
    try:
        if text.endswith(("/", os.sep)) or Path(path).is_dir():
            raise OutputPathError(f"{what} {path}: is a directory; give a file name")
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):  # new, or no folder: checked below
            st = None
        stream = standard_stream(st) if st else None
        if stream:
            raise OutputPathError(
                f"{what} {path}: is this command's {stream}, which it would replace; "
                "give another file"
            )
        target, st = existing_target(path)
        if st and not stat.S_ISREG(st.st_mode):
            raise OutputPathError(f"{what} {path}: is not a regular file; give a file name")
        folder = target.parent
        if not folder.exists():
            raise OutputPathError(f"{what} {path}: folder {folder} does not exist; create it first")
        if not folder.is_dir():
            raise OutputPathError(f"{what} {path}: {folder} is a file, not a folder")
        fd, probe = temporary_file(folder, target.name)
        os.close(fd)
        os.unlink(probe)
        check_writable(target, st)
    except NotReplaceable as e:
        raise OutputPathError(f"{what} {path}: {e.strerror}") from None
    except OSError as e:  # no permission, a read-only file system, a symlink loop
        raise OutputPathError(f"{what} {path}: cannot be written ({e.strerror or e})") from None


def check_output_folder(path, what):
    """Fail before the work when the folder `path` (given by `what`; made later if it is
    missing) could not take files: its nearest existing folder is tried for real."""
    folder = Path(os.path.abspath(path))
    try:
        if folder.exists() and not folder.is_dir():
            raise OutputPathError(f"{what} {path}: is a file; give a folder")
        existing = next(p for p in (folder, *folder.parents) if p.exists())
        if not existing.is_dir():
            raise OutputPathError(f"{what} {path}: {existing} is a file, not a folder")
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".probe.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:  # no permission, a read-only file system
        raise OutputPathError(f"{what} {path}: cannot be written ({e.strerror or e})") from None


def same_file_key(path):
    """What two paths to one file share: (device, inode) where it exists (hard links,
    symlinks), else its real path."""
    try:
        st = os.stat(path)
    except OSError:
        return os.path.realpath(path)
    return (st.st_dev, st.st_ino)


# A JSON document nested deeper than this is refused before it is parsed: Python's
# parser recurses once per level, and a small stack (`ulimit -s 128`) overflows long
# before its recursion limit. A checkpoint nests 3 deep, a benchmark record 4.
MAX_JSON_DEPTH = 64
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def parse_json(text):
    """`json.loads(text)`, refusing with ValueError a document nested deeper than
    `MAX_JSON_DEPTH` (strings may hold brackets: they are skipped)."""
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH:  # else it cannot nest deeper
        depth = 0
        for ch in _NOT_BRACKET.sub("", _JSON_STRING.sub("", text)):
            depth += 1 if ch in "[{" else -1
            if depth > MAX_JSON_DEPTH:
                raise ValueError(f"nested more than {MAX_JSON_DEPTH} levels deep")
    return json.loads(text)
