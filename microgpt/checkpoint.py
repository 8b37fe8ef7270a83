"""JSON checkpoints: config, vocabulary and weights as plain numbers (no pickle).

JSON is slower and larger than a binary format, but it can be read by eye and
loading it can never run code.
"""

import json
import math

from .config import GPTConfig
from .data import write_atomic
from .model import param_shapes

FORMAT = "microgpt-checkpoint"
VERSION = 1


class CheckpointError(Exception):
    """A checkpoint that cannot be loaded; the message names the file and the problem."""


def save(path, model, tokenizer, stage, steps):
    """Write the model to `path` atomically."""
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "stage": stage,
        "steps": steps,
        "config": model.cfg.to_dict(),
        "chars": tokenizer.chars,
        "weights": model.weights(),
    }
    write_atomic(path, json.dumps(doc).encode("utf-8"))


def load(path):
    """(config, chars, weights) from a checkpoint file, checked for shape and type."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file; check the path given to --load") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"{path}: not a JSON checkpoint (corrupt or another file)") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot be read ({e.strerror})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a microgpt checkpoint; make one with --save PATH")
    if doc.get("version") != VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {doc.get('version')!r}, this microgpt reads {VERSION}"
        )
    try:
        cfg = GPTConfig(**doc["config"])
        chars = doc["chars"]
        weights = doc["weights"]
        if not (isinstance(chars, list) and all(isinstance(c, str) and len(c) == 1 for c in chars)):
            raise ValueError("vocabulary is not a list of characters")
        check_weights(weights, param_shapes(cfg, len(chars) + 1))
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: damaged or mismatched checkpoint ({e})") from None
    return cfg, chars, weights


def check_weights(weights, shapes):
    """Raise ValueError unless `weights` has exactly these matrices of finite numbers."""
    if not isinstance(weights, dict) or set(weights) != {name for name, _, _ in shapes}:
        raise ValueError("weight names do not match the config")
    for name, rows, cols in shapes:
        mat = weights[name]
        if len(mat) != rows or any(len(row) != cols for row in mat):
            raise ValueError(f"{name} is not {rows}x{cols}")
        for row in mat:
            for x in row:
                if not isinstance(x, (int, float)) or isinstance(x, bool) or not math.isfinite(x):
                    raise ValueError(f"{name} holds {x!r}, not a finite number")
