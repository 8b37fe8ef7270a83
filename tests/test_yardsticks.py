"""The yardsticks: the counting bigram, the held-out split, the model's loss on names."""

import math
import random

from microgpt import Run, Tokenizer, stages
from microgpt.book import yardsticks

DOCS = ["emma", "ava", "anna", "bob", "eve", "otto", "ada", "hannah", "abba", "nan"]


def test_bigram_of_uniform_counts_is_ln_vocab():
    tok = Tokenizer.from_docs(DOCS)
    # nothing counted: add-one smoothing alone gives every pair the same probability
    assert math.isclose(yardsticks.bigram_loss([], DOCS, tok), math.log(tok.vocab_size))


def test_bigram_loss_by_hand():
    tok = Tokenizer.from_docs(["ab"])  # vocab a, b, BOS
    # pairs of "ab": BOS->a, a->b, b->BOS; with add-one each row has 1 + 3 = 4 counts
    assert yardsticks.bigram_counts(["ab"], tok)[tok.bos] == [2, 1, 1]
    assert math.isclose(yardsticks.bigram_loss(["ab"], ["ab"], tok), -math.log(2 / 4))
    assert yardsticks.bigram_loss(["ab"], ["ba"], tok, smoothing=0) == math.inf


def test_unseen_names_come_after_the_trained_ones_and_never_repeat_them():
    run = Run(DOCS + ["emma", "ava"], stages.load("flat"), seed=1)
    held = yardsticks.unseen(run, 5, 100)
    assert held and not set(held) & set(run.docs[:5])
    assert held == [d for d in run.docs[5:] if d not in run.docs[:5]]


def test_model_loss_is_the_training_loss_and_changes_nothing():
    run = Run(DOCS, stages.load("flat"), seed=3)
    tokens = run.tokenizer.encode(DOCS[0])
    state = random.getstate(), run.rng.getstate(), run.model.weights()
    loss = yardsticks.model_loss(run.model, [DOCS[0]], run.tokenizer)
    assert (random.getstate(), run.rng.getstate(), run.model.weights()) == state
    # the loss the next training step reports for the same name, before its update
    assert math.isclose(loss, run.model.train_step(tokens, 0, 1), rel_tol=1e-12)
