"""Microbenchmarks of the kernels each pass rewrites: `make microbench`.

The same inputs go through the baseline's `Value` version and through the versions
of later stages that exist here, grouped per kernel so pytest-benchmark prints them
side by side. Not part of `make test`: timings are read, never asserted.
"""

import importlib
import math
import random
import time
from importlib.util import find_spec

import pytest

from microgpt import stages
from microgpt.config import GPTConfig
from microgpt.data import Tokenizer
from microgpt.engine import Value
from microgpt.train import create_model

CFG = GPTConfig()
TOKENIZER = Tokenizer("abcdefghijklmnopqrstuvwxyz")  # the 27 tokens of names.txt
NAME = TOKENIZER.encode("isabella")  # 9 positions, a longer-than-average step
CONTEXT = 8  # cached positions before the one timed in the attention benchmarks


def optional_module(name):
    """A microgpt module or numpy, or None when it is not here."""
    return importlib.import_module(name) if find_spec(name) is not None else None


def floats(n, seed):
    rng = random.Random(seed)
    return [rng.gauss(0, 1) for _ in range(n)]


def values(xs):
    return [Value(x) for x in xs]


numeric = optional_module("microgpt.numeric")
graph = optional_module("microgpt.stages.graph")
fused = optional_module("microgpt.stages.fused")
flat = optional_module("microgpt.stages.flat")
np = optional_module("numpy")
tensor = optional_module("microgpt.stages.tensor") if np else None

# ---------------------------------------------------------------------------------------
# kernel inputs: a 64x16 matrix (mlp_fc1), a 16-vector, 27 logits


W = [floats(CFG.n_embd, seed=row) for row in range(4 * CFG.n_embd)]
X = floats(CFG.n_embd, seed=100)
LOGITS = floats(TOKENIZER.vocab_size, seed=101)
TARGET = 5


def matvec_impls():
    from microgpt.model import linear

    w_values, x_values = [values(row) for row in W], values(X)
    impls = {"baseline": lambda: linear(x_values, w_values)}
    if numeric:
        impls["numeric"] = lambda: numeric.linear(X, W)
    if fused:  # builds one Dot node per row instead of 2 nodes per multiply-add
        w_nodes, x_nodes = [[graph.Node(v) for v in row] for row in W], [graph.Node(v) for v in X]
        impls["fused"] = lambda: fused.linear(x_nodes, w_nodes, W)
    if flat:
        w_flat = [v for row in W for v in row]
        impls["flat"] = lambda: flat.matvec(w_flat, X, len(W))
    if np:
        w_np, x_np = np.array(W), np.array(X)
        impls["numpy"] = lambda: w_np @ x_np
    return impls


def rmsnorm_impls():
    from microgpt.model import rmsnorm

    x_values = values(X)
    impls = {"baseline": lambda: rmsnorm(x_values)}
    if numeric:
        impls["numeric"] = lambda: numeric.rmsnorm(X)
    if flat:
        impls["flat"] = lambda: flat.rmsnorm(X, CFG.n_embd**-1)
    if tensor:
        x_np = np.array([X])
        impls["tensor"] = lambda: tensor.rmsnorm(x_np, CFG.n_embd**-1)
    return impls


def cross_entropy_impls():
    from microgpt.model import softmax

    logit_values = values(LOGITS)
    impls = {"baseline": lambda: -softmax(logit_values)[TARGET].log()}
    if numeric:
        impls["numeric"] = lambda: -math.log(numeric.softmax(LOGITS)[TARGET])
    if flat:
        impls["flat"] = lambda: -math.log(flat.softmax(LOGITS)[TARGET])
    if tensor:
        logits_np = np.array([LOGITS])

        def tensor_ce():
            probs = logits_np.copy()  # softmax_ works in place
            tensor.softmax_(probs)
            return -np.log(probs[0, TARGET])

        impls["tensor"] = tensor_ce
    return impls


KERNELS = {
    "matvec": matvec_impls(),
    "rmsnorm": rmsnorm_impls(),
    "cross_entropy": cross_entropy_impls(),
}


@pytest.mark.parametrize(
    "kernel, impl", [(k, name) for k, impls in KERNELS.items() for name in impls]
)
def test_kernel(benchmark, kernel, impl):
    benchmark.group = kernel
    benchmark(KERNELS[kernel][impl])


# ---------------------------------------------------------------------------------------
# whole-model pieces, for every stage that can run here


def runnable():
    return [s.name for s in stages.available() if find_spec(s.module_name) is not None]


def fresh_model(name):
    return create_model(stages.load(name), TOKENIZER.vocab_size, random.Random(42))


def rounds_for(fn, *args, budget=2.0):
    """Enough rounds to spend about `budget` seconds, at least 5: slow stages stay quick."""
    start = time.perf_counter()
    fn(*args)
    return max(5, min(500, int(budget / (time.perf_counter() - start))))


def copy_lists(x):
    """A copy of nested lists; the numbers or nodes inside are shared, not copied."""
    return [copy_lists(item) for item in x] if isinstance(x, list | tuple) else x


def filled_cache(model):
    """A KV cache holding CONTEXT positions of NAME, ready for one more position."""
    if hasattr(model, "logits_per_position"):
        model.logits_per_position(NAME[:2])  # sets up what a step reads (fused: weight floats)
    keys, values_ = model.empty_cache()
    for pos in range(CONTEXT):
        model.forward(NAME[pos], pos, keys, values_)
    return keys, values_


@pytest.mark.parametrize("name", runnable())
def test_attention_position(benchmark, name):
    """One forward position attending over CONTEXT cached ones (the whole layer, in fact)."""
    model = fresh_model(name)
    if not hasattr(model, "empty_cache"):
        pytest.skip(f"stage {name} reads the whole name at once, not one position at a time")
    benchmark.group = "forward one position"

    cache = filled_cache(model)

    def setup():  # forward appends to the cache: each round gets its own copy
        return (NAME[CONTEXT], CONTEXT, *copy_lists(cache)), {}

    rounds = rounds_for(model.forward, *setup()[0], budget=1.0)
    benchmark.pedantic(model.forward, setup=setup, rounds=rounds)


def backward_setup(model, name):
    """(a function building one step's graph, the backward to time), or a skip."""
    if hasattr(model, "logits_per_position") and hasattr(model, "backward"):
        # from numeric_ce on: the loss is computed on floats and seeds the logits' gradients
        cross_entropy = importlib.import_module("microgpt.stages.numeric_ce").cross_entropy

        def build():
            all_logits = model.logits_per_position(NAME)
            cross_entropy(all_logits, NAME)
            return ([logit for logits in all_logits for logit in logits],), {}

        return build, model.backward
    if hasattr(model, "loss"):
        return (lambda: ((model.loss(NAME),), {})), lambda root: root.backward()
    pytest.skip(f"stage {name} has no separate backward (see the train step group)")


@pytest.mark.parametrize("name", runnable())
def test_backward(benchmark, name):
    """Backward of one training step, where a stage has a graph to walk."""
    model = fresh_model(name)
    build, backward = backward_setup(model, name)
    benchmark.group = "backward"
    rounds = rounds_for(lambda: backward(*build()[0]), budget=3.0)
    benchmark.pedantic(backward, setup=build, rounds=rounds)


@pytest.mark.parametrize("name", runnable())
def test_train_step(benchmark, name):
    """Forward, backward and Adam on one name: what the bench command times, per step."""
    model = fresh_model(name)
    benchmark.group = "train step"
    rounds = rounds_for(model.train_step, NAME, 0, 1000)
    benchmark.pedantic(model.train_step, args=(NAME, 0, 1000), rounds=rounds, warmup_rounds=1)
