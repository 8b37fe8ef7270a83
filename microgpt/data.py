"""The dataset (one name per line) and the character tokenizer.

Where the names come from, first match wins: an explicit path (`--data`), the
`MICROGPT_DATA` environment variable, `input.txt` in the current directory (the
original script's habit), a cached download, a fresh download of makemore's
names.txt (checked against its sha256 and written atomically), and last a small
built-in list of common first names so that the model can always train.
"""

import codecs
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import MicrogptError
from .files import read_capped, sha256, write_atomic

NAMES_URL = "https://raw.githubusercontent.com/karpathy/makemore/master/names.txt"
NAMES_SHA256 = "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"
NAMES_SIZE = 228145  # bytes; a larger body is not names.txt
FALLBACK_PATH = Path(__file__).with_name("fallback_names.txt")
# A names file is read whole, and training reads one name per step: 70 times names.txt
# is far more than a run uses, and keeps the memory of the list in the hundreds of MB.
MAX_DATA_BYTES = 16 * 2**20


class DataError(MicrogptError):
    """A names file that cannot be used; the message names the file and the fix."""


@dataclass
class Dataset:
    """The documents and a one-line description of where they came from."""

    docs: list
    source: str
    is_fallback: bool = False  # the built-in list, used when nothing else was found


BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),  # before UTF-16's: it starts with the same two bytes
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)
WIDE_CODECS = (
    ("UTF-16", "utf-16-le"),
    ("UTF-16", "utf-16-be"),
    ("UTF-32", "utf-32-le"),
    ("UTF-32", "utf-32-be"),
)


def wide_encoding(raw):
    """Whether `raw` is UTF-16 or UTF-32 text (with or without a BOM): its name, or None.

    Without a BOM: the start decodes to printable text broken into lines; binary files
    decode to control characters or do not decode at all.
    """
    for bom, name in BOMS:
        if raw.startswith(bom):
            return name
    head = raw[:4096]
    if b"\0" not in head:
        return None
    whole = len(raw) <= len(head)
    for name, codec in WIDE_CODECS:
        try:  # a character cut at the end of the head is not an error
            text = codecs.getincrementaldecoder(codec)().decode(head, final=whole)
        except UnicodeDecodeError:
            continue
        readable = all(ch.isprintable() or ch in "\t\r\n " for ch in text)
        if text.strip() and readable and (whole or "\n" in text or "\r" in text):
            return name
    return None


def is_name_char(ch):
    """Whether `ch` can be part of a name read from a file: not a line break, NUL,
    byte-order mark or lone surrogate (which cannot be printed)."""
    return (
        len(ch) == 1
        and ch not in "\0\ufeff"
        and not "\ud800" <= ch <= "\udfff"
        and len(f"a{ch}a".splitlines()) == 1
    )


def parse_names(raw, where, path=None):
    """Names from the bytes of a text file: one per line, stripped, blank lines dropped.

    Any line ending counts (\\n, \\r\\n, a lone \\r), and a UTF-8 byte-order mark is
    not a letter, at the start or where two files were joined. `where` names the file
    in messages; `path`, when it is a file, goes into the command that converts it.
    """
    if not raw:
        raise DataError(f"{where}: the file is empty; give a text file with one name per line")
    encoding = wide_encoding(raw)
    if encoding:
        source = Path(path or where)
        target = source.with_name(f"{source.stem}-utf8.txt")
        raise DataError(
            f"{where}: is {encoding} text; save it as UTF-8 "
            f"(for example: iconv -f {encoding} -t UTF-8 {source} > {target})"
        )
    if b"\0" in raw:
        raise DataError(
            f"{where}: looks like a binary file; give a text file with one name per line"
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{where}: not UTF-8 text (bad byte at offset {e.start}); save it as UTF-8"
        ) from None
    text = text.replace("\ufeff", "")
    docs = [name for name in map(str.strip, text.splitlines()) if name]
    if not docs:
        raise DataError(f"{where}: has no names, only blank lines; put one name per line")
    return docs


def read_names(path, given_by="--data"):
    """Names from a file the user pointed at (through `given_by`), or a one-line `DataError`."""
    path = Path(path)
    where = path if given_by in ("--data", str(path)) else f"{path} ({given_by})"
    too_big = (
        "; training reads one name per step, so use a part of it "
        f"(for example: head -n 100000 {path} > names-part.txt)"
    )
    raw = read_capped(path, MAX_DATA_BYTES, DataError, "a names file", given_by, too_big)
    return parse_names(raw, where, path)


def cache_path():
    """Where a downloaded names.txt is kept: $XDG_CACHE_HOME/microgpt/names.txt.

    None where there is no home folder to put it in (HOME unset, the user not in passwd).
    """
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        try:
            base = Path.home() / ".cache"
        except RuntimeError:
            return None
    return Path(base) / "microgpt" / "names.txt"


def cached_names(path):
    """The cached names.txt if it is there and intact, else None."""
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            raw = f.read(NAMES_SIZE + 1)
    except OSError:  # missing, unreadable, a folder
        return None
    return parse_names(raw, path) if sha256(raw) == NAMES_SHA256 else None


def fallback_docs():
    """The built-in list of a few hundred common first names."""
    return parse_names(FALLBACK_PATH.read_bytes(), FALLBACK_PATH)


def data_source(path=None):
    """(path, where it was given) of the user's names file, the first of: `path`
    (--data), $MICROGPT_DATA, ./input.txt; None when the names come from the cache,
    a download or the built-in list."""
    if path:
        return str(path), "--data"
    env_path = os.environ.get("MICROGPT_DATA")
    if env_path:
        return env_path, "MICROGPT_DATA"
    if Path("input.txt").is_file():
        return "input.txt", "input.txt"
    return None


def load_dataset(path=None, url=None, timeout=20.0, warn=None, deadline=60.0):
    """Find the names in the documented order and return them with their source."""
    warn = warn or (lambda msg: print(msg, file=sys.stderr))
    given = data_source(path)
    if given:
        path, given_by = given
        source = path if given_by == "--data" or path == given_by else f"{path} ({given_by})"
        return Dataset(read_names(path, given_by), source)
    cached = cache_path()
    docs = cached_names(cached)
    if docs is not None:
        return Dataset(docs, str(cached))
    url = url or os.environ.get("MICROGPT_DATA_URL") or NAMES_URL
    instead = (
        "training on the built-in list of common names instead "
        "(pass --data PATH to use your own file)"
    )
    warn(f"downloading names.txt to {cached or 'memory (no home folder to cache it in)'} ...")
    from . import download  # deferred: urllib is slow to import, and only a download needs it

    try:
        raw = download.download(url, NAMES_SIZE, timeout, deadline)
    except download.DownloadError as e:
        raw, problem = None, str(e)
    else:
        problem = None if sha256(raw) == NAMES_SHA256 else "checksum mismatch: not makemore's"
    if problem:
        warn(f"warning: could not download names.txt ({problem}); {instead}")
        return Dataset(fallback_docs(), "built-in fallback list", is_fallback=True)
    docs = parse_names(raw, url)
    if cached is None:
        return Dataset(docs, f"{url} (not cached)")
    try:
        write_atomic(cached, raw)
    except OSError as e:  # the download is checked: use it even where it cannot be kept
        warn(f"warning: could not cache names.txt at {cached} ({e.strerror or e}); using it anyway")
        return Dataset(docs, f"{url} (not cached)")
    return Dataset(docs, str(cached))


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
