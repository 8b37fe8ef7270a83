"""Did it learn? Yardsticks for a trained model, measured without touching its run.

A loss means little alone. Two numbers put it in context: the loss of a counting
bigram model (makemore's first model: how often each token follows each other
token, plus one for every pair), and the trained model's loss on names it never saw.
All losses here are means over every predicted token of a list of names, in nats.
The bigram and a model's loss live in `microgpt.evaluate`, which the command line's
`--eval-every` uses too; this module adds what the book's chapters ask of them.
"""

from .. import evaluate
from ..arguments import ArgumentError, checked, instance, number, sequence, whole
from ..data import Tokenizer, names
from ..sampling import model as a_model
from ..train import Run

TOKENIZER = instance(Tokenizer, hint=" (Run(...).tokenizer)")


@checked(
    run=instance(Run, hint=" (Run(docs, stages.load('flat')))"), num_steps=whole(0), count=whole(0)
)
def unseen(run, num_steps, count):
    """The first `count` names after the `num_steps` a run trains on (one name per
    step, in its shuffled order), skipping names that also occur among those trained."""
    seen = set(run.docs[:num_steps])
    names = [doc for doc in run.docs[num_steps:] if doc not in seen]
    return names[:count]


def names_or_none(value, label):
    """Names, or an empty list (no counts: every pair is as likely as any other)."""
    return [] if isinstance(value, (list, tuple)) and not value else names(value, label)


@checked(docs=names_or_none, tokenizer=TOKENIZER, smoothing=number(0, 1e6))
def bigram_counts(docs, tokenizer, smoothing=1):
    """counts[a][b]: how often token b follows token a in `docs`, plus `smoothing`."""
    return evaluate.bigram_counts(docs, tokenizer, smoothing)


@checked(train_docs=names_or_none, eval_docs=names, tokenizer=TOKENIZER, smoothing=number(0, 1e6))
def bigram_loss(train_docs, eval_docs, tokenizer, smoothing=1):
    """Mean -log p(next | current) over `eval_docs`, p counted on `train_docs` with
    makemore's add-one smoothing (`evaluate.bigram_loss`)."""
    return evaluate.bigram_loss(train_docs, eval_docs, tokenizer, smoothing)


def ids_list(value, label):
    return sequence(value, label, "token ids")


@checked(ids=ids_list)
def pairs(ids):
    """(token, next token) of each position of `ids`."""
    return evaluate.pairs(ids)


@checked(model=a_model, docs=names, tokenizer=TOKENIZER)
def model_loss(model, docs, tokenizer):
    """The model's mean -log p(next token) over `docs`, read from its forward pass:
    no weight changes and no random draw (`microgpt.evaluate.mean_loss`)."""
    if model.vocab_size != tokenizer.vocab_size:
        raise ArgumentError(
            f"model_loss: the model has {model.vocab_size} tokens and the tokenizer "
            f"{tokenizer.vocab_size}: give the tokenizer the model was trained with"
        )
    return evaluate.mean_loss(model, docs, tokenizer)
