"""JSON checkpoints: config, vocabulary and weights as plain numbers (no pickle).

JSON is slower and larger than a binary format, but it can be read by eye and
loading it can never run code.
"""

import json
import math

from . import files
from .config import ConfigError, GPTConfig
from .data import is_name_char, wide_encoding
from .errors import MicrogptError
from .model import param_shapes

FORMAT = "microgpt-checkpoint"
VERSION = 1


class CheckpointError(MicrogptError):
    """A checkpoint that cannot be loaded; the message names the file and the problem."""


def save(path, model, tokenizer, stage_name, steps):
    """Write the model to `path` atomically."""
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "stage": stage_name,
        "steps": steps,
        "config": model.cfg.to_dict(),
        "chars": tokenizer.chars,
        "weights": model.weights(),
    }
    files.write_atomic(path, json.dumps(doc).encode("utf-8"))


# What a checkpoint may ask for: far above microgpt's sizes, far below what would
# exhaust memory before a single name is sampled.
MAX_BYTES = 256 * 2**20  # the file
LIMITS = {"n_layer": 64, "n_embd": 2048, "n_head": 256, "block_size": 2048}
MAX_VOCAB = 65536
MAX_PARAMS = 10_000_000


def check_capacity(cfg, chars, path):
    """A `CheckpointError` unless a checkpoint can hold a model of this shape and a
    vocabulary of `chars`: called before training, so that `--save PATH` does not write
    a file that `--load` would refuse, after the run."""
    if len(chars) >= MAX_VOCAB:
        raise CheckpointError(
            f"--save {path}: the names use {len(chars):,} distinct "
            f"characters; a checkpoint holds fewer than {MAX_VOCAB:,}"
        )
    for name, limit in LIMITS.items():
        if getattr(cfg, name) > limit:
            raise CheckpointError(f"--save {path}: a checkpoint holds {name} up to {limit:,}")
    size = sum(rows * cols for _, rows, cols in param_shapes(cfg, len(chars) + 1))
    if size > MAX_PARAMS:
        raise CheckpointError(
            f"--save {path}: this model has {size:,} parameters; "
            f"a checkpoint holds at most {MAX_PARAMS:,}"
        )


def load(path):
    """(config, chars, weights) from a checkpoint file, checked for shape and type."""
    too_big = ", not a checkpoint"
    raw = files.read_capped(path, MAX_BYTES, CheckpointError, "a checkpoint", "--load", too_big)
    encoding = wide_encoding(raw)
    if encoding:
        raise CheckpointError(
            f"{path}: is {encoding} text; a checkpoint is the UTF-8 JSON of --save"
        )
    try:
        doc = files.parse_json(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise CheckpointError(f"{path}: not a JSON checkpoint (corrupt or another file)") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a microgpt checkpoint; make one with --save PATH")
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version != VERSION:
        shown = repr(version) if isinstance(version, (int, str)) else "unknown"
        raise CheckpointError(
            f"{path}: checkpoint version {shown[:20]}, this microgpt reads {VERSION}"
        )
    try:
        cfg = check_config(doc.get("config"))
        chars = check_chars(doc.get("chars"))
        shapes = param_shapes(cfg, len(chars) + 1)
        if sum(rows * cols for _, rows, cols in shapes) > MAX_PARAMS:
            raise ValueError(f"more than {MAX_PARAMS:,} parameters")
        weights = check_weights(doc.get("weights"), shapes)
    except ValueError as e:
        raise CheckpointError(f"{path}: damaged or mismatched checkpoint ({e})") from None
    return cfg, chars, weights


def check_config(config):
    """A `GPTConfig` from the checkpoint's dict, or ValueError saying which field is wrong.

    The sizes are bounded first: a file is untrusted, and its shape must not ask for
    more than a checkpoint can hold."""
    fields = GPTConfig().to_dict()
    if not isinstance(config, dict) or set(config) != set(fields):
        raise ValueError(f"config must have exactly the fields {', '.join(fields)}")
    for name, limit in LIMITS.items():
        value = config[name]
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= limit:
            raise ValueError(f"config {name} must be a whole number from 1 to {limit}")
    std = config["init_std"]
    if not isinstance(std, (int, float)) or isinstance(std, bool) or not 0 <= std < 1e3:
        raise ValueError("config init_std must be a number from 0 to 1000")
    try:  # the shape's own checks, the same as for the command line and the Python API
        return GPTConfig(**config)
    except ConfigError as e:
        raise ValueError(f"config {e}") from None


def check_chars(chars):
    """The vocabulary: characters a names file can hold (no line breaks, no surrogates,
    which could not be printed), each once."""
    if not (isinstance(chars, list) and all(isinstance(c, str) and len(c) == 1 for c in chars)):
        raise ValueError("vocabulary is not a list of characters")
    if not 1 <= len(chars) < MAX_VOCAB:
        raise ValueError(f"vocabulary must have 1 to {MAX_VOCAB - 1} characters")
    bad = next((c for c in chars if not is_name_char(c)), None)
    if bad is not None:
        raise ValueError(f"vocabulary holds {ascii(bad)}, which is not a character of a name")
    if len(set(chars)) != len(chars):
        raise ValueError("vocabulary lists a character twice")
    return chars


def check_weights(weights, shapes):
    """`weights` as floats, or ValueError unless it has exactly these matrices of finite numbers."""
    if not isinstance(weights, dict) or set(weights) != {name for name, _, _ in shapes}:
        raise ValueError("weight names do not match the config")
    out = {}
    for name, rows, cols in shapes:
        mat = weights[name]
        if not isinstance(mat, list) or len(mat) != rows:
            raise ValueError(f"{name} is not {rows}x{cols}")
        out[name] = []
        for row in mat:
            if not isinstance(row, list) or len(row) != cols:
                raise ValueError(f"{name} is not {rows}x{cols}")
            out[name].append([finite(x, name) for x in row])
    return out


def finite(x, name):
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        try:
            value = float(x)
        except OverflowError:  # a 400-digit integer
            value = math.inf
        if math.isfinite(value):
            return value
    raise ValueError(f"{name} holds {str(x)[:20]!r}, not a finite number")
