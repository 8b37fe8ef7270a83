"""The hyperparameters of microgpt, in one place, checked once where they are made.

Every way a model is made (the command line's flags, the Python API, a checkpoint)
builds a `GPTConfig` and an `AdamConfig`, so their checks here are the only ones: a
shape no stage can run is refused with one line, before any weight is drawn.
"""

import math
from dataclasses import asdict, dataclass

from .errors import MicrogptError


class ConfigError(MicrogptError):
    """A model shape or optimizer setting that no stage can run; the message says which."""


def shown(value):
    """`value` for a message, cut short (a number too long to print is "a huge number")."""
    try:
        text = repr(value)
    except ValueError:  # an int of more digits than Python converts
        return "a huge number"
    return text if len(text) <= 40 else text[:40] + "..."


def check_whole(name, value, low=1):
    """`value` is a whole number (an int, not a bool) of at least `low`."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{name} must be a whole number, not {shown(value)}")
    if value < low:
        raise ConfigError(f"{name} must be at least {low}, not {shown(value)}")


def check_real(name, value, low, high=math.inf, low_open=False):
    """`value` is a finite real number in [low, high) (or (low, high) when `low_open`)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, not {shown(value)}")
    if value < low or (low_open and value == low) or value >= high:
        bound = f"above {low:g}" if low_open else f"at least {low:g}"
        bound += f" and below {high:g}" if high < math.inf else ""
        raise ConfigError(f"{name} must be {bound}, not {shown(value)}")


@dataclass(frozen=True)
class GPTConfig:
    """Shape of the model; the defaults are microgpt's."""

    n_layer: int = 1  # transformer blocks
    n_embd: int = 16  # width of the residual stream
    n_head: int = 4  # attention heads; each sees n_embd // n_head dimensions
    block_size: int = 16  # longest context (the longest name has 15 characters)
    init_std: float = 0.08  # standard deviation of the Gaussian weight init

    def __post_init__(self):
        """Refuse a shape no stage can run: sizes below one, or heads that do not split
        the width evenly (a head would see a fraction of a dimension)."""
        for name in ("n_layer", "n_embd", "n_head", "block_size"):
            check_whole(name, getattr(self, name))
        if self.n_embd % self.n_head:
            raise ConfigError(
                f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head}): "
                "each head sees n_embd / n_head dimensions"
            )
        check_real("init_std", self.init_std, 0)

    @property
    def head_dim(self):
        return self.n_embd // self.n_head

    def positions(self, num_tokens):
        """Positions trained on in a sequence of `num_tokens`: each predicts the next token."""
        return min(self.block_size, num_tokens - 1)

    def to_dict(self):
        return asdict(self)


@dataclass(frozen=True)
class AdamConfig:
    """Adam with bias correction and a learning rate that decays linearly to zero."""

    lr: float = 0.01  # peak learning rate, at step 0
    beta1: float = 0.85  # decay of the first-moment (mean) estimate
    beta2: float = 0.99  # decay of the second-moment (variance) estimate
    eps: float = 1e-8  # keeps the update finite when the variance is ~0
    decay: bool = True  # False: the same `lr` at every step (no decay)

    def __post_init__(self):
        check_real("lr", self.lr, 0, low_open=True)
        check_real("beta1", self.beta1, 0, 1)
        check_real("beta2", self.beta2, 0, 1)
        check_real("eps", self.eps, 0, low_open=True)
        if not isinstance(self.decay, bool):
            raise ConfigError(f"decay must be True or False, not {shown(self.decay)}")

    def lr_at(self, step, num_steps):
        """The learning rate of `step`: linear decay from `lr` to zero over the run,
        or `lr` throughout when `decay` is off."""
        if not self.decay:
            return self.lr
        return self.lr * (1 - step / num_steps)

    def bias_corrections(self, step):
        """Adam's divisors for the first and second moments after `step + 1` updates."""
        return 1 - self.beta1 ** (step + 1), 1 - self.beta2 ** (step + 1)
