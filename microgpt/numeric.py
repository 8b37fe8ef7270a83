"""The GPT's building blocks on plain floats, op for op as the `Value` versions.

Used where no gradient is needed (sampling, in `numeric_inference`), where a stage
computes a piece of the model by hand, and by the exercises as the reference.
Divisions are written as the `Value` engine performs them, `a * b**-1`, so the
floats match the graph's to the last bit in CPython 3.11 (from 3.12 on, `sum()` of
floats is compensated; `left_sum` keeps the softmax's total exact to the graph's).
"""

import math


def left_sum(xs):
    """Left-to-right sum from 0, as over `Value`s (Python 3.12+ `sum` of floats compensates)."""
    total = 0.0
    for x in xs:
        total += x
    return total


def linear(x, w):
    """Matrix-vector product on floats, one dot product per row of `w`."""
    return [sum(wi * xi for wi, xi in zip(wo, x)) for wo in w]


def softmax(logits):
    """Probabilities from float logits, as `microgpt.model.softmax` computes them."""
    max_val = max(logits)
    exps = [math.exp(val - max_val) for val in logits]
    inv_total = left_sum(exps) ** -1
    return [e * inv_total for e in exps]


def rmsnorm(x):
    """Rescale float `x` to unit root-mean-square (no learned gain)."""
    ms = sum(xi * xi for xi in x) * len(x) ** -1
    scale = (ms + 1e-5) ** -0.5
    return [xi * scale for xi in x]


def relu(x):
    return max(0.0, x)
