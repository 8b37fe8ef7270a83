"""microgpt: a tiny character-level GPT on a scalar autograd engine, and how to make it fast.

The algorithm is Andrej Karpathy's microgpt; `microgpt.stages` holds the same model
after each optimization pass. Run `python -m microgpt --help`.
"""

from .config import AdamConfig, GPTConfig
from .data import Tokenizer, load_dataset
from .engine import Value
from .train import Run, losses_and_samples, sample_names, train

__version__ = "0.1.0"
__all__ = [
    "AdamConfig",
    "GPTConfig",
    "Run",
    "Tokenizer",
    "Value",
    "load_dataset",
    "losses_and_samples",
    "sample_names",
    "train",
]
