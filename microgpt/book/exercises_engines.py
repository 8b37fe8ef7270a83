"""Checkers for the exercises of chapters 17 and 18: lower precision, and many processes.

Built like the other chapters' checkers (`microgpt.book.exercises`: `@checker`, `Wrong`).
Pure standard library, so they run in the browser too, where PyTorch does not.
"""

import math
import numbers
import random
import struct

from ..arguments import ArgumentError, checked, shown, whole
from .exercises import Wrong, call, checker


def a_real(value, label):
    """A real number a float holds (not a bool), as given: infinities and NaN too."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    try:
        ok = ok and isinstance(float(value), float)
    except OverflowError:  # an int too large for a float
        ok = False
    if not ok:
        raise ArgumentError(f"{label} must be a number a float holds, not {shown(value)}")
    return value


# ---------------------------------------------------------------------------------------
# chapter 17: bfloat16


@checked(x=a_real)
def bfloat16(x):
    """`x` rounded to the nearest bfloat16, as a float: float32's 8 exponent bits and the
    top 7 of its 23 fraction bits, ties to the even neighbour (PyTorch's conversion).
    `x` is first rounded to float32, which PyTorch's bfloat16 tensors are converted from."""
    try:
        (bits,) = struct.unpack("<I", struct.pack("<f", x))
    except OverflowError:  # beyond float32's range, so it rounds to infinity, as in PyTorch
        return math.copysign(math.inf, x)
    if math.isnan(x):
        return x
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    (rounded,) = struct.unpack("<f", struct.pack("<I", bits & 0xFFFFFFFF))
    return rounded


BFLOAT16_CASES = [
    1.0,
    -2.5,
    1 / 3,
    math.pi,
    1 + 2**-8,  # halfway between 1 and the next bfloat16: to the even one, 1
    1 + 3 * 2**-8,  # halfway between 1 + 2**-7 and 1 + 2**-6: to the even one, 1 + 2**-6
    1 + 2**-8 + 2**-20,  # just above halfway: up
    65504.0,
    3.0e38,  # near the top of the range: the exponent is kept, only the fraction rounds
    1e-30,
    0.0,
]


@checker
def check_to_bfloat16(fn):
    """`fn(x) -> float`: `x` rounded to the nearest bfloat16."""
    rng = random.Random(17)
    cases = BFLOAT16_CASES + [rng.uniform(-10, 10) for _ in range(200)]
    cases += [rng.uniform(-1, 1) * 10 ** rng.randint(-20, 20) for _ in range(200)]
    for x in cases:
        got = call(fn, x)
        want = bfloat16(x)
        if not isinstance(got, float):
            raise Wrong(f"to_bfloat16({x!r}) returned {got!r}; return a float")
        if got == want:
            continue
        if x == 1 + 2**-8 and got == 1 + 2**-7:
            raise Wrong(
                f"to_bfloat16({x!r}) = {got!r}: a tie rounds to the even neighbour (1.0), not up"
            )
        (bits,) = struct.unpack("<I", struct.pack("<f", x))
        truncated = struct.unpack("<f", struct.pack("<I", bits & 0xFFFF0000))[0]
        if got == truncated:
            raise Wrong(
                f"to_bfloat16({x!r}) = {got!r}: that cuts the low 16 bits off; round to the "
                f"nearest instead ({want!r})"
            )
        raise Wrong(f"to_bfloat16({x!r}) = {got!r}, expected {want!r}")
    return "to_bfloat16: nearest bfloat16, ties to even, on 400 random numbers too"


# ---------------------------------------------------------------------------------------
# chapter 18: many processes


@checker
def check_batch_mean(fn):
    """`fn(sums, counts) -> float`: the mean loss of a whole batch from each process's
    summed loss and its count of target tokens."""
    rng = random.Random(18)
    cases = [([10.0, 30.0], [5, 15]), ([12.0, 6.0], [4, 2]), ([3.0], [2])]
    for _ in range(20):
        n = rng.randint(2, 8)
        counts = [rng.randint(1, 60) for _ in range(n)]
        cases.append(([rng.uniform(0.5, 4.0) * c for c in counts], counts))
    for sums, counts in cases:
        got = call(fn, list(sums), list(counts))
        want = sum(sums) / sum(counts)
        if isinstance(got, (int, float)) and math.isclose(got, want, rel_tol=1e-12):
            continue
        means = [s / c for s, c in zip(sums, counts)]
        if isinstance(got, (int, float)) and math.isclose(got, sum(means) / len(means)):
            raise Wrong(
                f"batch_mean({sums}, {counts}) = {got!r} is the mean of the processes' means; "
                "a token of a short slice then weighs more: divide the sum by all the tokens"
            )
        raise Wrong(f"batch_mean({sums}, {counts}) = {got!r}, expected {want!r}")
    return "batch_mean: every token weighs the same, whatever process it was on"


GB = 1e9
# the ZeRO paper's figure 1: 7.5B parameters, 64 devices, mixed-precision Adam
ZERO_PAPER_CASE = (7.5e9, 64, {0: 120 * GB, 1: 31.4 * GB, 2: 16.6 * GB, 3: 1.875 * GB})


def a_count(value, label):
    """A finite number of at least 0 (not a bool), as given: parameters may be `7.5e9`."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not (ok and math.isfinite(value) and 0 <= value <= 1e300):
        raise ArgumentError(f"{label} must be a number from 0 to 1e+300, not {shown(value)}")
    return value


@checked(num_params=a_count, devices=whole(1), stage=whole(0, 3))
def zero_bytes(num_params, devices, stage):
    """Bytes of model states per device under ZeRO stage 0 (DDP: all replicated) to 3, for
    mixed-precision Adam: 2 bytes of weights, 2 of gradients and 12 of optimizer state
    (float32 weights, momentum and variance) per parameter."""
    weights, grads, optimizer = 2 * num_params, 2 * num_params, 12 * num_params
    if stage >= 1:
        optimizer /= devices
    if stage >= 2:
        grads /= devices
    if stage >= 3:
        weights /= devices
    return weights + grads + optimizer


@checker
def check_memory_per_device(fn):
    """`fn(num_params, devices, stage) -> bytes` per device for ZeRO stages 0 to 3."""
    num_params, devices, _ = ZERO_PAPER_CASE
    cases = [(num_params, devices, stage) for stage in range(4)]
    cases += [(124e6, 8, stage) for stage in range(4)] + [(4192, 2, s) for s in range(4)]
    for args in cases:
        got = call(fn, *args)
        want = zero_bytes(*args)
        if isinstance(got, (int, float)) and math.isclose(got, want, rel_tol=1e-9):
            continue
        stage = args[2]
        hint = {
            0: "stage 0 keeps everything on every device: 2 + 2 + 12 bytes per parameter",
            1: "stage 1 splits only the optimizer state (12 bytes per parameter) over devices",
            2: "stage 2 splits the gradients too",
            3: "stage 3 splits everything, the weights too",
        }[stage]
        raise Wrong(f"memory_per_device{args} = {got!r}, expected {want!r}: {hint}")
    return "memory_per_device: the ZeRO paper's 120 GB, 31.4 GB, 16.6 GB and 1.9 GB"


__all__ = ["check_batch_mean", "check_memory_per_device", "check_to_bfloat16"]
