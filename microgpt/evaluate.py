"""Did it learn, or did it memorise? A held-out split, a model's loss, the bigram's.

A training loss says how well the model predicts the names it trains on; only names it
never saw say whether it learned what names look like. makemore holds out a tenth of
its shuffled names (at most 1,000) and reports the loss on both sets; `split` does the
same with microgpt's shuffled order, taking the held-out names from its end, so the
names the first steps train on are the original run's. Losses here are means over
every predicted token of a list of names, in nats: the training loss's measure.

The counting bigram (makemore's first model: how often each token follows each
other token, plus one for every pair) is the yardstick a transformer must beat.
"""

import math

HELD_OUT_SHARE = 0.1  # makemore's test split: a tenth of the names ...
HELD_OUT_MAX = 1000  # ... and at most this many
EVAL_BATCH = 64  # names scored per call by a stage that scores a batch at once


def held_out_size(num_docs):
    """How many of `num_docs` names makemore's split holds out."""
    return min(HELD_OUT_MAX, int(num_docs * HELD_OUT_SHARE))


def split(docs):
    """(training names, held-out names): the held-out ones are the last of `docs`."""
    k = held_out_size(len(docs))
    return (docs[: len(docs) - k], docs[len(docs) - k :])


def pairs(ids):
    return zip(ids, ids[1:])


def mean_loss(model, docs, tokenizer):
    """The model's mean -log p(next token) over every token of `docs`, a name cut at the
    model's block as in training: forward passes only, no update and no random draw.

    A stage that scores a batch at once (`batch_loss`, the mean over a batch's tokens)
    takes a few dozen names per call; any other stage reads its sampler at temperature
    1, position by position."""
    block = model.cfg.block_size
    token_lists = [tokenizer.encode(doc)[: block + 1] for doc in docs]
    if hasattr(model, "batch_loss"):
        total, count = 0.0, 0
        for start in range(0, len(token_lists), EVAL_BATCH):
            batch = token_lists[start : start + EVAL_BATCH]
            tokens = sum(len(ids) - 1 for ids in batch)
            total += model.batch_loss(batch) * tokens
            count += tokens
        return total / count
    total, count = 0.0, 0
    for ids in token_lists:
        next_probs = model.sampler(1.0)  # a fresh KV cache per name
        for pos, (token, target) in enumerate(pairs(ids)):
            total -= math.log(next_probs(token, pos)[target])
            count += 1
    return total / count


def bigram_counts(docs, tokenizer, smoothing=1):
    """counts[a][b]: how often token b follows token a in `docs`, plus `smoothing`."""
    size = tokenizer.vocab_size
    counts = [[smoothing] * size for _ in range(size)]
    for doc in docs:
        ids = tokenizer.encode(doc)
        for a, b in pairs(ids):
            counts[a][b] += 1
    return counts


def bigram_loss(train_docs, eval_docs, tokenizer, smoothing=1):
    """Mean -log p(next | current) over `eval_docs`, p counted on `train_docs`.

    `smoothing=1` is makemore's add-one smoothing (`N + 1`): no pair has probability
    zero, so a pair never counted costs a finite loss instead of infinity.
    """
    counts = bigram_counts(train_docs, tokenizer, smoothing)
    log_p = [[math.log(c / sum(row)) if c else -math.inf for c in row] for row in counts]
    losses = [-log_p[a][b] for doc in eval_docs for a, b in pairs(tokenizer.encode(doc))]
    return sum(losses) / len(losses)
