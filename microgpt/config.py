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

    def to_dict(self):
        return asdict(self)


@dataclass(frozen=True)
class AdamConfig:
    """Adam with bias correction and a learning rate that decays linearly to zero."""

    lr: float = 0.01  # peak learning rate, at step 0
    beta1: float = 0.85  # decay of the first-moment (mean) estimate
    beta2: float = 0.99  # decay of the second-moment (variance) estimate
    eps: float = 1e-8  # keeps the update finite when the variance is ~0
