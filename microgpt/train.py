"""Training and sampling loops, shared by every stage, the CLI and the book."""

import math
import random

from .config import AdamConfig, GPTConfig
from .data import Tokenizer
from .model import init_weights


class TrainingDiverged(Exception):
    """The loss became NaN or infinite; the message says at which step."""


def create_model(stage_module, vocab_size, rng, cfg=GPTConfig(), adam=AdamConfig()):
    """A fresh model of a stage, its weights drawn from `rng` in microgpt's order."""
    return stage_module.Model(cfg, vocab_size, init_weights(cfg, vocab_size, rng), adam)


def train(model, docs, tokenizer, num_steps):
    """Train on one document per step; yields (step, loss) after every update."""
    for step in range(num_steps):
        doc = docs[step % len(docs)]
        loss = model.train_step(tokenizer.encode(doc), step, num_steps)
        if not math.isfinite(loss):
            raise TrainingDiverged(
                f"loss is {loss} at step {step + 1}; training stopped "
                "(try fewer steps or check the data)"
            )
        yield step, loss


def sample_names(model, tokenizer, rng, num_samples=20, temperature=0.5):
    """`num_samples` new names, drawn with `rng`."""
    return [
        tokenizer.decode(model.generate(rng, temperature, tokenizer.bos))
        for _ in range(num_samples)
    ]


def format_step(step, num_steps, loss):
    """The original's log line; kept byte for byte so runs can be diffed."""
    return f"step {step + 1:4d} / {num_steps:4d} | loss {loss:.4f}"


def format_sample(index, name):
    return f"sample {index + 1:2d}: {name}"


INFERENCE_HEADER = "--- inference (new, hallucinated names) ---"


class Run:
    """One microgpt run, step by step: seed, shuffle, tokenizer, model, as the original."""

    def __init__(self, docs, stage_module, seed=42, cfg=GPTConfig(), adam=AdamConfig()):
        self.rng = random.Random(seed)
        self.docs = list(docs)
        self.rng.shuffle(self.docs)
        self.tokenizer = Tokenizer.from_docs(self.docs)
        self.model = create_model(stage_module, self.tokenizer.vocab_size, self.rng, cfg, adam)

    def train(self, num_steps):
        return train(self.model, self.docs, self.tokenizer, num_steps)

    def sample(self, num_samples=20, temperature=0.5):
        return sample_names(self.model, self.tokenizer, self.rng, num_samples, temperature)


def losses_and_samples(docs, stage_module, num_steps, seed=42, num_samples=20):
    """The whole run as data: per-step losses and sampled names (used to compare stages)."""
    run = Run(docs, stage_module, seed)
    losses = [loss for _, loss in run.train(num_steps)]
    return losses, run.sample(num_samples)
