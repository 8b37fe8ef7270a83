"""The fixed hyperparameters of microgpt, in one place."""

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class GPTConfig:
    """Shape of the model; the defaults are microgpt's."""

    n_layer: int = 1  # transformer blocks
    n_embd: int = 16  # width of the residual stream
    n_head: int = 4  # attention heads; each sees n_embd // n_head dimensions
    block_size: int = 16  # longest context (the longest name has 15 characters)
    init_std: float = 0.08  # standard deviation of the Gaussian weight init

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

    def lr_at(self, step, num_steps):
        """The learning rate of `step`: linear decay from `lr` to zero over the run,
        or `lr` throughout when `decay` is off."""
        if not self.decay:
            return self.lr
        return self.lr * (1 - step / num_steps)

    def bias_corrections(self, step):
        """Adam's divisors for the first and second moments after `step + 1` updates."""
        return 1 - self.beta1 ** (step + 1), 1 - self.beta2 ** (step + 1)
