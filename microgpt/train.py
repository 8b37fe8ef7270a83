"""The training loop and a whole run, shared by every stage, the CLI and the book."""

import math
import random

from .config import AdamConfig, GPTConfig
from .data import Tokenizer
from .errors import MicrogptError
from .model import init_weights
from .sampling import sample_names


class TrainingDiverged(MicrogptError):
    """The loss became NaN or infinite; the message says at which step."""


def create_model(stage_module, vocab_size, rng, cfg=GPTConfig(), adam=AdamConfig(), options=None):
    """A fresh model of a stage, its weights drawn from `rng` in microgpt's order.

    `options`: the keyword options the stage's Model takes (the registry's `options`).
    """
    weights = init_weights(cfg, vocab_size, rng)
    return stage_module.Model(cfg, vocab_size, weights, adam, **(options or {}))


def train(model, docs, tokenizer, num_steps, batch_size=None):
    """Train on one document per step (or `batch_size`, in order); yields (step, loss).

    Batches need a stage whose model has `train_batch` (the registry says which).
    """
    for step in range(num_steps):
        try:
            if batch_size is None:
                doc = docs[step % len(docs)]
                loss = model.train_step(tokenizer.encode(doc), step, num_steps)
            else:
                start = step * batch_size
                batch = [tokenizer.encode(docs[(start + i) % len(docs)]) for i in range(batch_size)]
                loss = model.train_batch(batch, step, num_steps)
        except (ArithmeticError, ValueError) as e:  # overflow, log(0): numbers out of range
            loss = math.nan
            if not isinstance(e, ArithmeticError) and "math domain" not in str(e):
                raise
        if not math.isfinite(loss):
            raise TrainingDiverged(
                f"loss is {loss} at step {step + 1}; training stopped "
                "(try fewer steps, a smaller batch, or check the data)"
            )
        yield step, loss


def format_step(step, num_steps, loss):
    """The original's log line; kept byte for byte so runs can be diffed."""
    return f"step {step + 1:4d} / {num_steps:4d} | loss {loss:.4f}"


def format_sample(index, name):
    return f"sample {index + 1:2d}: {name}"


INFERENCE_HEADER = "--- inference (new, hallucinated names) ---"


def shuffled(docs, seed):
    """(the documents in microgpt's order, the generator that shuffled them): a run
    draws its weights from that generator next."""
    rng = random.Random(seed)
    docs = list(docs)
    rng.shuffle(docs)
    return docs, rng


def step_docs(docs, num_steps):
    """The documents of steps 1 to `num_steps` as `train` reads them: cycled when fewer."""
    return [docs[step % len(docs)] for step in range(num_steps)]


class Run:
    """One microgpt run, step by step: seed, shuffle, tokenizer, model, as the original."""

    def __init__(
        self, docs, stage_module, seed=42, cfg=GPTConfig(), adam=AdamConfig(), options=None
    ):
        self.docs, self.rng = shuffled(docs, seed)
        self.tokenizer = Tokenizer.from_docs(self.docs)
        # what a twin of the model needs: the generator's state where the weights are drawn
        self._recipe = (stage_module, cfg, adam, options, self.rng.getstate())
        vocab_size = self.tokenizer.vocab_size
        self.model = create_model(stage_module, vocab_size, self.rng, cfg, adam, options)

    def fresh_model(self):
        """A new model with the weights this run's model started from (its untrained twin)."""
        stage_module, cfg, adam, options, state = self._recipe
        rng = random.Random()
        rng.setstate(state)
        return create_model(stage_module, self.tokenizer.vocab_size, rng, cfg, adam, options)

    def train(self, num_steps, batch_size=None):
        return train(self.model, self.docs, self.tokenizer, num_steps, batch_size)

    def sample(self, num_samples=20, temperature=0.5):
        return sample_names(self.model, self.tokenizer, self.rng, num_samples, temperature)


def losses_and_samples(docs, stage_module, num_steps, seed=42, num_samples=20):
    """The whole run as data: per-step losses and sampled names (used to compare stages)."""
    run = Run(docs, stage_module, seed)
    losses = [loss for _, loss in run.train(num_steps)]
    return losses, run.sample(num_samples)
