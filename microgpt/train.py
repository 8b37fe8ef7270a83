"""The training loop and a whole run, shared by every stage, the CLI and the book."""

import math
import random
import warnings

from .arguments import ArgumentError, checked, instance, optional, shown, temperature, whole
from .config import AdamConfig, GPTConfig
from .data import Tokenizer, names
from .errors import MicrogptError, single_line
from .evaluate import bigram_loss, mean_loss, split
from .memory import check_fits
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


class LongNamesWarning(UserWarning):
    """Some names are longer than the model's context; training reads their start only."""


def stage_module(value, label):
    """A stage: a module (or anything) with a `Model` class, as `stages.load(name)` gives."""
    if not callable(getattr(value, "Model", None)):
        hint = f"stages.load({value!r})" if isinstance(value, str) else "stages.load('flat')"
        raise ArgumentError(f"{label} must be a stage's module ({hint}), not {shown(value)}")
    return value


def trainable(value, label):
    if not callable(getattr(value, "train_step", None)):
        raise ArgumentError(f"{label} must be a stage's model (Run(...).model), not {shown(value)}")
    return value


def check_batches(model, batch_size):
    if batch_size is not None and not callable(getattr(model, "train_batch", None)):
        stage = type(model).__module__.rpartition(".")[2]
        raise ArgumentError(
            f"batch_size needs a stage that trains on batches (tensor), not {stage}"
        )


@checked(
    model=trainable,
    docs=names,
    tokenizer=instance(Tokenizer, hint=" (Tokenizer.from_docs(docs))"),
    num_steps=whole(1),
    batch_size=optional(whole(1)),
)
def train(model, docs, tokenizer, num_steps, batch_size=None):
    """Train on one document per step (or `batch_size`, in order); yields (step, loss).

    The batched algorithm, defined here once for every stage that batches (the
    registry's `batched`; their models' `train_batch`): step s trains on the B names
    that follow the previous step's in the shuffled order (names s*B to s*B + B - 1,
    cycling), each cut at the block as one name is; the loss is the mean cross-entropy
    over every real target token of the batch (not a mean of the names' means), and one
    Adam update follows. A stage may pad the names to one length; padding must change
    neither the loss nor the gradient. With B = 1 it is the original's step.

    Batches need a stage whose model has `train_batch`; that is checked when the
    first step is asked for. The other arguments are checked at the call (`@checked`).
    """
    check_batches(model, batch_size)
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


def format_eval(step, num_steps, train_loss, held_out_loss):
    """`--eval-every`'s line: after the step line of the same step, told apart by its word."""
    return (
        f"eval {step + 1:4d} / {num_steps:4d} | train {train_loss:.4f} | "
        f"held-out {held_out_loss:.4f}"
    )


def format_held_out(count, bigram):
    """`--eval-every`'s line under `num docs`: the held-out names and the bigram's loss on them."""
    return f"held-out docs: {count} | bigram loss {bigram:.4f}"


def format_sample(index, name):
    """The original's sample line; a control character of the name (it comes from a
    names file or a checkpoint) is shown escaped, never sent to the terminal."""
    return f"sample {index + 1:2d}: {single_line(name)}"


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


def long_names_note(docs, cfg):
    """The note for names longer than the context, or None: the original trains on the
    first `block_size` tokens of a sequence, and so does every stage."""
    longest = max(map(len, docs))
    if cfg.positions(longest + 2) >= longest + 1:  # BOS, the name, BOS: nothing cut
        return None
    cut = sum(1 for doc in docs if cfg.positions(len(doc) + 2) < len(doc) + 1)
    return (
        f"{cut:,} of the names are longer than the context of {cfg.block_size} tokens "
        f"(the longest has {longest:,} characters); training reads the start of each, "
        "as microgpt does"
    )


def check_memory(stage_module, cfg, vocab_size, docs, batch_size=None):
    """A `MemoryLimitError` (with the estimate and the limit) unless a model of the
    stage, trained on `batch_size` of `docs` per step, fits in memory."""
    positions = max(map(len, docs), default=0) + 1  # BOS, the longest name, BOS
    kind = getattr(stage_module.Model, "memory_kind", None)
    return check_fits(kind, cfg, vocab_size, batch_size or 1, positions)


class Run:
    """One microgpt run, step by step: seed, shuffle, tokenizer, model, as the original.

    A model that cannot fit in memory is refused before its weights are drawn
    (`microgpt.memory`); so is a batch, before its first step."""

    @checked(
        docs=names,
        stage_module=stage_module,
        seed=whole(),
        cfg=instance(GPTConfig),
        adam=instance(AdamConfig),
        options=optional(instance(dict)),
    )
    def __init__(
        self, docs, stage_module, seed=42, cfg=GPTConfig(), adam=AdamConfig(), options=None
    ):
        self.docs, self.rng = shuffled(docs, seed)
        note = long_names_note(self.docs, cfg)
        if note:  # once per run: Python shows a warning once per place it is raised
            warnings.warn(note, LongNamesWarning, stacklevel=3)
        self.tokenizer = Tokenizer.from_docs(self.docs)
        check_memory(stage_module, cfg, self.tokenizer.vocab_size, self.docs)
        # what a twin of the model needs: the generator's state where the weights are drawn
        self._recipe = (stage_module, cfg, adam, options, self.rng.getstate())
        vocab_size = self.tokenizer.vocab_size
        self.model = create_model(stage_module, vocab_size, self.rng, cfg, adam, options)

    def hold_out(self):
        """Take makemore's held-out split off the training names (`microgpt.evaluate`):
        the last tenth of the shuffled names, at most 1,000. Returns them; the first
        names the run trains on stay the same."""
        self.docs, self.held_out = split(self.docs)
        return self.held_out

    def evaluate(self):
        """(the model's loss on the first training names, on the held-out names), as many
        of each: the names steps 1, 2, ... train on, beside names it never sees."""
        seen = self.docs[: len(self.held_out)]
        return tuple(mean_loss(self.model, d, self.tokenizer) for d in (seen, self.held_out))

    def bigram_loss(self):
        """The counting bigram's loss on the held-out names, counted on the training names."""
        return bigram_loss(self.docs, self.held_out, self.tokenizer)

    def fresh_model(self):
        """A new model with the weights this run's model started from (its untrained twin)."""
        stage_module, cfg, adam, options, state = self._recipe
        rng = random.Random()
        rng.setstate(state)
        return create_model(stage_module, self.tokenizer.vocab_size, rng, cfg, adam, options)

    @checked(num_steps=whole(1), batch_size=optional(whole(1)))
    def train(self, num_steps, batch_size=None):
        if batch_size:
            stage_module, cfg = self._recipe[:2]
            check_memory(stage_module, cfg, self.tokenizer.vocab_size, self.docs, batch_size)
        return train(self.model, self.docs, self.tokenizer, num_steps, batch_size)

    @checked(num_samples=whole(0), temperature=temperature)
    def sample(self, num_samples=20, temperature=0.5):
        return sample_names(self.model, self.tokenizer, self.rng, num_samples, temperature)


def losses_and_samples(docs, stage_module, num_steps, seed=42, num_samples=20):
    """The whole run as data: per-step losses and sampled names (used to compare stages)."""
    run = Run(docs, stage_module, seed)
    losses = [loss for _, loss in run.train(num_steps)]
    return losses, run.sample(num_samples)
