"""The dataset (one name per line) and the character tokenizer.

Where the names come from, first match wins: an explicit path (`--data`), the
`MICROGPT_DATA` environment variable, `input.txt` in the current directory (the
original script's habit), a cached download, a fresh download of makemore's
names.txt (checked against its sha256 and written atomically), and last a small
built-in list of common first names so that the model can always train.
"""

import hashlib
import os
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

NAMES_URL = "https://raw.githubusercontent.com/karpathy/makemore/master/names.txt"
NAMES_SHA256 = "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"
NAMES_SIZE = 228145  # bytes; a larger body is not names.txt
FALLBACK_PATH = Path(__file__).with_name("fallback_names.txt")


class DataError(Exception):
    """A names file that cannot be used; the message names the file and the fix."""


class DownloadError(Exception):
    """The download failed; the message says why."""


@dataclass
class Dataset:
    """The documents and a one-line description of where they came from."""

    docs: list
    source: str


def parse_names(raw, where):
    """Names from the bytes of a file: one per line, stripped, blank lines dropped."""
    if not raw:
        raise DataError(f"{where}: the file is empty; give a text file with one name per line")
    if b"\0" in raw:
        raise DataError(
            f"{where}: looks like a binary file; give a text file with one name per line"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{where}: not UTF-8 text (bad byte at offset {e.start}); save it as UTF-8"
        ) from None
    docs = [line.strip() for line in text.strip().split("\n") if line.strip()]
    if not docs:
        raise DataError(f"{where}: has no names, only blank lines; put one name per line")
    return docs


def read_names(path):
    """Names from a file the user pointed at, or a one-line `DataError`."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file; check the path given to --data") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory; give the path of a names file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror}); check its permissions") from None
    return parse_names(raw, path)


def cache_path():
    """Where a downloaded names.txt is kept: $XDG_CACHE_HOME/microgpt/names.txt."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "microgpt" / "names.txt"


def sha256(raw):
    return hashlib.sha256(raw).hexdigest()


def write_atomic(path, raw):
    """Write bytes to `path` through a temporary file, so a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def download_names(url=NAMES_URL, dest=None, timeout=20.0):
    """Download names.txt, check size and sha256, then write it atomically to `dest`."""
    dest = Path(dest) if dest else cache_path()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            raw = response.read(NAMES_SIZE + 1)
    except Exception as e:  # offline, DNS, HTTP error, timeout, no sockets (browser)
        raise DownloadError(f"{type(e).__name__}: {e}") from None
    if len(raw) != NAMES_SIZE:
        raise DownloadError(
            f"got {len(raw)} bytes, expected {NAMES_SIZE} (truncated or wrong file)"
        )
    if sha256(raw) != NAMES_SHA256:
        raise DownloadError("checksum mismatch (sha256 differs from makemore's names.txt)")
    write_atomic(dest, raw)
    return dest


def fallback_docs():
    """The built-in list of a few hundred common first names."""
    return parse_names(FALLBACK_PATH.read_bytes(), FALLBACK_PATH)


def load_dataset(path=None, url=None, timeout=20.0, warn=None):
    """Find the names in the documented order and return them with their source."""
    warn = warn or (lambda msg: print(msg, file=sys.stderr))
    if path:
        return Dataset(read_names(path), str(path))
    env_path = os.environ.get("MICROGPT_DATA")
    if env_path:
        return Dataset(read_names(env_path), f"{env_path} (MICROGPT_DATA)")
    if Path("input.txt").is_file():
        return Dataset(read_names("input.txt"), "input.txt")
    cached = cache_path()
    if cached.is_file() and sha256(cached.read_bytes()) == NAMES_SHA256:
        return Dataset(read_names(cached), str(cached))
    url = url or os.environ.get("MICROGPT_DATA_URL") or NAMES_URL
    try:
        warn(f"downloading names.txt to {cached} ...")
        return Dataset(read_names(download_names(url, cached, timeout)), str(cached))
    except DownloadError as e:
        warn(
            f"warning: could not download names.txt ({e}); training on the built-in list "
            "of common names instead (pass --data PATH to use your own file)"
        )
    except OSError as e:
        warn(
            f"warning: could not cache names.txt at {cached} ({e.strerror}); training on the "
            "built-in list of common names instead (pass --data PATH to use your own file)"
        )
    return Dataset(fallback_docs(), "built-in fallback list")


class Tokenizer:
    """Characters to token ids and back; one extra id, BOS, marks a name's start and end."""

    def __init__(self, chars):
        self.chars = list(chars)
        self.bos = len(self.chars)
        self.vocab_size = len(self.chars) + 1
        self._index = {ch: i for i, ch in enumerate(self.chars)}

    @classmethod
    def from_docs(cls, docs):
        """Vocabulary = the sorted unique characters of the documents."""
        return cls(sorted(set("".join(docs))))

    def encode(self, doc):
        """`[BOS] + characters + [BOS]`, the training sequence of one name."""
        return [self.bos] + [self._index[ch] for ch in doc] + [self.bos]

    def decode(self, ids):
        return "".join(self.chars[i] for i in ids)
