"""Checks of what the Python API and the book's helpers are called with.

What the command line refuses, the functions refuse too, in the same words: one line
naming the argument, what it must be and what it got (`ArgumentError`), never a
`TypeError` from deep inside, a hang or a wrong answer. A function states its checks
once, beside its signature:

    @checked(docs=names, num_steps=whole(1))
    def train(model, docs, tokenizer, num_steps): ...

`checked` binds the call's arguments, passes each checked one through its check
(`check(value, label) -> the value to use`, or an `ArgumentError`), then calls the
function with what the checks returned.
"""

import functools
import inspect
import math
import numbers
import os
import reprlib

from .errors import MicrogptError, single_line


class ArgumentError(MicrogptError):
    """A function of the package called with an argument it cannot use."""


_short = reprlib.Repr()
_short.maxstring = _short.maxother = 40
_short.maxlist = _short.maxtuple = _short.maxdict = 4


def shown(value):
    """`value` for a message: its type, and a short repr of it."""
    return single_line(f"{type(value).__name__} {_short.repr(value)}")


def checked(**checks):
    """Decorate a function whose arguments `checks` ({parameter: check}) are checked."""

    def decorate(fn):
        signature = inspect.signature(fn)
        unknown = set(checks) - set(signature.parameters)
        assert not unknown, f"{fn.__qualname__} has no parameter {unknown}"
        label = fn.__qualname__.removesuffix(".__init__")

        @functools.wraps(fn)
        def call(*args, **kwargs):
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError as e:  # a missing or unknown argument
                raise ArgumentError(f"{label}: {e}") from None
            bound.apply_defaults()
            for name, check in checks.items():
                bound.arguments[name] = check(bound.arguments[name], f"{label}: {name}")
            return fn(*bound.args, **bound.kwargs)

        return call

    return decorate


def _bounds(low, high):
    if low is not None and high is not None:
        return f" from {low:,} to {high:,}"
    if low is not None:
        return f" of at least {low:,}"
    return f" of at most {high:,}" if high is not None else ""


def whole(low=None, high=None):
    """A whole number (not a bool) in [low, high]; None bounds are open."""

    def check(value, label):
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        if not ok or (low is not None and value < low) or (high is not None and value > high):
            got = shown(value) if not ok else f"{int(value):,}"[:40]
            raise ArgumentError(f"{label} must be a whole number{_bounds(low, high)}, not {got}")
        return int(value)

    return check


def number(low, high):
    """A finite real number (not a bool) in [low, high]."""

    def check(value, label):
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        if not (ok and math.isfinite(value) and low <= value <= high):
            raise ArgumentError(
                f"{label} must be a number from {low:g} to {high:g}, not {shown(value)}"
            )
        return float(value)

    return check


def optional(check):
    """None, or what `check` accepts."""

    def check_optional(value, label):
        return None if value is None else check(value, label)

    return check_optional


def instance(*types, hint=""):
    """An instance of one of `types`; `hint` says how to make one."""

    def check(value, label):
        if not isinstance(value, types):
            wanted = " or ".join(t.__name__ for t in types)
            raise ArgumentError(f"{label} must be a {wanted}{hint}, not {shown(value)}")
        return value

    return check


def function(value, label):
    """Something to call."""
    if not callable(value):
        raise ArgumentError(f"{label} must be a function, not {shown(value)}")
    return value


def text(value, label):
    """A str."""
    if not isinstance(value, str):
        raise ArgumentError(f"{label} must be a str, not {shown(value)}")
    return value


def path(value, label):
    """A file's path: a non-empty str or `pathlib.Path` (bytes are refused: a path as
    bytes would be read as the text of its repr)."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise ArgumentError(f"{label} must be a path (a str or a pathlib.Path), not {shown(value)}")
    if not value.strip() or "\0" in value:
        raise ArgumentError(f"{label} must be a file's path, not {shown(value)}")
    return value


def sequence(value, label, of="items"):
    """`value` as a list, if it is a list, tuple or other sized sequence (not a str)."""
    if isinstance(value, (str, bytes, bytearray, dict)) or not hasattr(value, "__len__"):
        raise ArgumentError(f"{label} must be a list of {of}, not {shown(value)}")
    try:
        return list(value)
    except TypeError:
        raise ArgumentError(f"{label} must be a list of {of}, not {shown(value)}") from None


# the temperatures sampling can use: 1/T and the logits times 1/T stay finite
TEMPERATURE_RANGE = (1e-6, 1e6)
temperature = number(*TEMPERATURE_RANGE)
