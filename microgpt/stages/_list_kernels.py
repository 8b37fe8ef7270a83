"""Kernels on flat lists of floats, shared by the stages `tape` and `flat`.

A matrix is a row-major flat list; a product is a few calls whose inner loops run in
C (`map`, `zip`, `sum`), with no object per number beyond the floats themselves.
"""

import math
from itertools import chain, repeat
from operator import mul

from ..numeric import left_sum


def matvec(w, x, rows):
    """`w @ x` for a row-major flat `w` with `rows` rows, in C-level loops."""
    return list(map(sum, zip(*[iter(map(mul, w, x * rows))] * len(x))))


def transpose(w, cols):
    """The row-major flat transpose of a row-major flat matrix with `cols` columns."""
    return list(chain.from_iterable(zip(*zip(*[iter(w)] * cols))))


def repeat_each(xs, n):
    """x0 n times, then x1 n times, ...: the row factor of an outer product."""
    return chain.from_iterable(zip(*[xs] * n))


def outer_sum(pairs, rows, cols):
    """Sum over (dy, x) pairs of the outer products dy x^T, as a row-major flat list."""
    return list(map(sum, zip(*[map(mul, repeat_each(dy, cols), x * rows) for dy, x in pairs])))


def weighted_sum(pairs):
    """Element by element, the sum of c * vec over the (c, vec) pairs."""
    return map(sum, zip(*[map(mul, vec, repeat(c)) for c, vec in pairs]))


def rows_from_pairs(pairs_of_rows, cols, weighted_sum=weighted_sum):
    """Row-major flat matrix whose row r is the sum of c * vec over (c, vec) in pairs_of_rows[r]."""
    zero_row = [0.0] * cols
    out = []
    for pairs in pairs_of_rows:
        if not pairs:
            out += zero_row
        elif len(pairs) == 1:  # one scaled vector: nothing to add up
            c, vec = pairs[0]
            out += map(mul, vec, repeat(c))
        else:
            out += weighted_sum(pairs)
    return out


def rmsnorm(x, inv_n):
    """(normalised x, scale) with the baseline's arithmetic."""
    scale = (left_sum([xi * xi for xi in x]) * inv_n + 1e-5) ** -0.5
    return [xi * scale for xi in x], scale


def rmsnorm_backward(dy, x, scale, inv_n):
    """Gradient of rmsnorm at `x` (scale = (mean(x^2) + eps)^-1/2)."""
    c = sum(map(mul, dy, x)) * (-scale * scale * scale * inv_n)
    return [scale * d + c * xi for d, xi in zip(dy, x)]


def dot_groups(a, b, size):
    """Dot products of consecutive groups of `size` numbers of a and b (up to the shorter)."""
    return list(map(sum, zip(*[iter(map(mul, a, b))] * size)))


def column_sums(values, cols):
    """Column sums, each left to right, of a row-major matrix with `cols` columns."""
    return list(map(sum, zip(*zip(*[iter(values)] * cols))))


def softmax_columns(scores, cols):
    """Softmax of each column of a row-major matrix, the baseline's way, in the same layout."""
    rows = len(scores) // cols
    maxes = list(map(max, zip(*zip(*[iter(scores)] * cols))))
    exps = [math.exp(v - m) for v, m in zip(scores, maxes * rows)]
    inv_totals = [total**-1 for total in column_sums(exps, cols)]
    return list(map(mul, exps, inv_totals * rows))


# ---------------------------------------------------------------------------
# the same three products with `math.sumprod` (Python 3.12+): a dot product in one C
# loop, with no float object per term and no tuple per row. The gain is largest in
# the browser (Pyodide), where each object costs more than it costs natively
# (lite/README.md measures it); Python 3.11 keeps the kernels above.

sumprod = getattr(math, "sumprod", None)


def matvec_sumprod(w, x, rows):
    """`matvec` with one `sumprod` per row."""
    return list(map(sumprod, zip(*[iter(w)] * len(x)), repeat(x, rows)))


def outer_sum_sumprod(pairs, rows, cols):
    """`outer_sum`: entry (r, c) is the dot product over the pairs of dy[r] and x[c]."""
    dy_cols = list(zip(*[dy for dy, _ in pairs]))  # one number per pair in each
    x_cols = list(zip(*[x for _, x in pairs]))
    return list(map(sumprod, repeat_each(dy_cols, cols), x_cols * rows))


def weighted_sum_sumprod(pairs):
    """`weighted_sum`: one dot product of the coefficients with each column."""
    return map(sumprod, repeat([c for c, _ in pairs]), zip(*[vec for _, vec in pairs]))


def rows_from_pairs_sumprod(pairs_of_rows, cols):
    """`rows_from_pairs` with each row's sum by `sumprod`."""
    return rows_from_pairs(pairs_of_rows, cols, weighted_sum_sumprod)
