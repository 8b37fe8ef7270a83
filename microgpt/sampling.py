"""Sampling new names: one loop for every stage.

A stage supplies only its next-token probabilities, through
`model.sampler(temperature)`: a function `next_probs(token_id, pos_id)` that
reads one more token and returns the probabilities of the one after it as
floats. The loop, the draw from `rng` and the stopping rule live here once, so
every stage draws exactly the baseline's names from the same probabilities.
"""

import math
import random

from . import arguments
from .arguments import ArgumentError, instance, shown, temperature, whole
from .data import Tokenizer
from .errors import MicrogptError


class SamplingError(MicrogptError):
    """The model's probabilities cannot be drawn from (weights or temperature too extreme)."""


TOO_EXTREME = (
    "the model's next-token probabilities are not finite "
    "(the weights or the temperature are too extreme to sample from)"
)


def checked(probs):
    """`probs`, or a `SamplingError` when they are not finite numbers with a positive sum."""
    total = math.fsum(probs)
    if not (math.isfinite(total) and total > 0):
        raise SamplingError(TOO_EXTREME)
    return probs


def generate(model, rng, temperature, bos):
    """Token ids of one new sequence, drawn until BOS or the context is full.

    Extreme weights (a checkpoint is untrusted) overflow differently in each stage:
    inf and NaN here, OverflowError or 0 ** -1 there; all of them are one `SamplingError`.
    """
    next_probs = model.sampler(temperature)
    choices = range(model.vocab_size)
    token_id = bos
    sample = []
    for pos_id in range(model.cfg.block_size):
        try:
            probs = next_probs(token_id, pos_id)
        except ArithmeticError:  # OverflowError, ZeroDivisionError
            raise SamplingError(TOO_EXTREME) from None
        except ValueError as e:  # math.log / sqrt of a number out of range
            if "math domain" not in str(e):
                raise
            raise SamplingError(TOO_EXTREME) from None
        token_id = rng.choices(choices, weights=checked(probs))[0]
        if token_id == bos:
            break
        sample.append(token_id)
    return sample


def model(value, label):
    """A model of any stage: it has a `sampler` and the `vocab_size` and `cfg` it samples with."""
    if not all(hasattr(value, name) for name in ("sampler", "vocab_size", "cfg")):
        raise ArgumentError(f"{label} must be a stage's model (Run(...).model), not {shown(value)}")
    return value


SAMPLING_CHECKS = dict(
    model=model,
    tokenizer=instance(Tokenizer, hint=" (Run(...).tokenizer)"),
    rng=instance(random.Random, hint=" (random.Random(seed))"),
    num_samples=whole(0),
    temperature=temperature,
)


def check_vocabularies(model, tokenizer):
    if model.vocab_size != tokenizer.vocab_size:
        raise ArgumentError(
            f"the model has {model.vocab_size} tokens and the tokenizer {tokenizer.vocab_size}: "
            "sample a model with the tokenizer it was trained with"
        )


@arguments.checked(**SAMPLING_CHECKS)
def iter_names(model, tokenizer, rng, num_samples=20, temperature=0.5):
    """New names one at a time, drawn with `rng`: a million of them need no more memory."""
    check_vocabularies(model, tokenizer)
    return (
        tokenizer.decode(generate(model, rng, temperature, tokenizer.bos))
        for _ in range(num_samples)
    )


@arguments.checked(**SAMPLING_CHECKS)
def sample_names(model, tokenizer, rng, num_samples=20, temperature=0.5):
    """`num_samples` new names, drawn with `rng`."""
    return list(iter_names(model, tokenizer, rng, num_samples, temperature))
