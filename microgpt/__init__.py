"""microgpt: a tiny character-level GPT on a scalar autograd engine, and how to make it fast.

The algorithm is Andrej Karpathy's microgpt. The modules at the top are the model
core (data, engine, model, optimizer, training, sampling, checkpoints);
`microgpt.stages` holds the same model after each optimization pass,
`microgpt.tools` the command line and the benchmark, and `microgpt.book` the
notebooks' helpers and exercises. Run `python -m microgpt --help`.
"""

from .errors import MicrogptError, catch_interrupt_while_loading

catch_interrupt_while_loading()  # `python -m microgpt`: Ctrl-C while loading is one line

from .config import AdamConfig, GPTConfig  # noqa: E402
from .data import Tokenizer, load_dataset  # noqa: E402
from .engine import Value  # noqa: E402
from .sampling import sample_names  # noqa: E402
from .train import Run, losses_and_samples, train  # noqa: E402

__version__ = "0.1.0"
__all__ = [
    "AdamConfig",
    "GPTConfig",
    "MicrogptError",
    "Run",
    "Tokenizer",
    "Value",
    "load_dataset",
    "losses_and_samples",
    "sample_names",
    "train",
]
