"""Did it learn? Yardsticks for a trained model, measured without touching its run.

A loss means little alone. Two numbers put it in context: the loss of a counting
bigram model (makemore's first model: how often each token follows each other
token, plus one for every pair), and the trained model's loss on names it never saw.
All losses here are means over every predicted token of a list of names, in nats.
The bigram and a model's loss live in `microgpt.evaluate`, which the command line's
`--eval-every` uses too; this module adds what the book's chapters ask of them.
"""

from ..evaluate import bigram_counts, bigram_loss, mean_loss, pairs


def unseen(run, num_steps, count):
    """The first `count` names after the `num_steps` a run trains on (one name per
    step, in its shuffled order), skipping names that also occur among those trained."""
    seen = set(run.docs[:num_steps])
    names = [doc for doc in run.docs[num_steps:] if doc not in seen]
    return names[:count]


def model_loss(model, docs, tokenizer):
    """The model's mean -log p(next token) over `docs`, read from its forward pass:
    no weight changes and no random draw (`microgpt.evaluate.mean_loss`)."""
    return mean_loss(model, docs, tokenizer)


__all__ = ["bigram_counts", "bigram_loss", "model_loss", "pairs", "unseen"]
