"""The scalar-autograd stages' own pieces: fused nodes, the walk, pooling, float forward."""

import gc
import math
import random

import pytest
from helpers import central_difference

from microgpt import stages
from microgpt.book.graph_stats import count_graph_nodes
from microgpt.config import GPTConfig
from microgpt.data import Tokenizer
from microgpt.engine import Value
from microgpt.model import init_weights, softmax
from microgpt.model import rmsnorm as value_rmsnorm
from microgpt.sampling import generate
from microgpt.stages import fused, fused_norm, graph, numeric_ce, numeric_inference
from microgpt.stages.graph import Node

pytestmark = pytest.mark.usefixtures("frozen_gc")  # big graphs of Value nodes: see conftest

DOCS = ["emma", "olivia", "ava", "isabella", "sophia", "mia"]
TOKENIZER = Tokenizer.from_docs(DOCS)
SCALAR_STAGES = ["cleanup", "numeric_inference", "graph", "numeric_ce", "fused", "fused_norm"]
SCALAR_STAGES += ["gc", "threads"]


def make_model(stage, seed=42, pooled=True):
    cfg = GPTConfig()
    weights = init_weights(cfg, TOKENIZER.vocab_size, random.Random(seed))
    model = stages.load(stage).Model(cfg, TOKENIZER.vocab_size, weights)
    if not pooled:
        model.recycles = False  # the graph stage's switch: spent nodes are let go
    return model


def leaves(values):
    return [Node(v) for v in values]


def backward_from(output, upstream):
    """Set d(loss)/d(output) = upstream and propagate with the fused backward."""
    for node, g in zip(output, upstream):
        node.grad = g
    fused.backward(graph.topological_order(output))


def test_dot_gradient_matches_finite_differences():
    rng = random.Random(0)
    a_vals = [rng.uniform(-1, 1) for _ in range(5)]
    b_vals = [rng.uniform(-1, 1) for _ in range(5)]
    # make the inputs inner nodes so the walk reaches them through the Dot
    a = [x * 1.0 for x in leaves(a_vals)]
    b = [x * 1.0 for x in leaves(b_vals)]
    out = fused.Dot(a, b, [x.data for x in a], [x.data for x in b], a + b, scale=0.5)
    backward_from([out], [1.0])

    def dot(ab):
        return 0.5 * sum(x * y for x, y in zip(ab[:5], ab[5:]))

    values = a_vals + b_vals
    for i, node in enumerate(a + b):
        assert node.grad == pytest.approx(central_difference(dot, values, i), abs=1e-8)


def test_linear_rows_share_inputs_and_still_pass_all_gradients():
    rng = random.Random(1)
    x_vals = [rng.uniform(-1, 1) for _ in range(4)]
    w_vals = [[rng.uniform(-1, 1) for _ in range(4)] for _ in range(3)]
    x = [n * 1.0 for n in leaves(x_vals)]
    w = [leaves(row) for row in w_vals]
    out = fused.linear(x, w, w_vals)
    upstream = [0.3, -1.2, 0.7]
    backward_from(out, upstream)
    for i, xi in enumerate(x):
        expected = sum(g * row[i] for g, row in zip(upstream, w_vals))
        assert xi.grad == pytest.approx(expected, abs=1e-12)
    for r, row in enumerate(w):
        for i, wi in enumerate(row):
            assert wi.grad == pytest.approx(upstream[r] * x_vals[i], abs=1e-12)


def test_fused_rmsnorm_matches_value_rmsnorm_forward_and_backward():
    rng = random.Random(2)
    x_vals = [rng.uniform(-2, 2) for _ in range(16)]
    upstream = [rng.uniform(-1, 1) for _ in range(16)]
    x_ref = [Value(v) for v in x_vals]
    y_ref = value_rmsnorm(x_ref)
    loss = sum(g * y for g, y in zip(upstream, y_ref))
    loss.backward()
    x = [n * 1.0 for n in leaves(x_vals)]
    y = fused_norm.rmsnorm(x)
    backward_from(y, upstream)
    for ours, ref in zip(y, y_ref):
        assert ours.data == ref.data
    for ours, ref in zip(x, x_ref):
        assert ours.grad == pytest.approx(ref.grad, abs=1e-12)


def test_walk_handles_deep_chains_and_visits_shared_nodes_once():
    x = Node(1.0)
    y = x
    for _ in range(100_000):  # far past the recursion limit
        y = y * 1.0
    y.backward()
    assert x.grad == 1.0
    a = Node(2.0) * 1.0
    b = a * a + a  # a reached three times
    b.backward()
    assert a.grad == pytest.approx(2 * 2.0 + 1)
    topo = graph.topological_order([b])
    assert len(topo) == len({id(n) for n in topo})
    position = {id(n): i for i, n in enumerate(topo)}
    for node in topo:
        for child in node._children:
            if child._children:
                assert position[id(child)] < position[id(node)]


def test_cross_entropy_gradient_is_the_graph_gradient():
    model = make_model("numeric_ce", pooled=False)
    tokens = TOKENIZER.encode("olivia")
    all_logits = model.logits_per_position(tokens)
    loss = numeric_ce.cross_entropy(all_logits, tokens)
    ours = [[logit.grad for logit in logits] for logits in all_logits]
    reference = make_model("cleanup")
    ref_logits = []
    keys, values = reference.empty_cache()
    n = len(tokens) - 1
    for pos_id in range(n):
        ref_logits.append(reference.forward(tokens[pos_id], pos_id, keys, values))
    ref_loss = (1 / n) * sum(
        -softmax(logits)[target].log() for logits, target in zip(ref_logits, tokens[1:])
    )
    for logits in ref_logits:  # cut the graph at the logits: only their gradients matter
        for logit in logits:
            logit._children = ()
    ref_loss.backward()
    assert loss == pytest.approx(ref_loss.data, abs=1e-12)
    for row, ref_row in zip(ours, ref_logits):
        assert row == pytest.approx([logit.grad for logit in ref_row], abs=1e-12)


@pytest.mark.parametrize("stage", ["graph", "numeric_ce", "fused", "fused_norm"])
def test_node_pooling_changes_nothing_but_speed(stage):
    pooled, plain = make_model(stage), make_model(stage, pooled=False)
    for step, doc in enumerate(DOCS[:3]):
        tokens = TOKENIZER.encode(doc)
        loss = pooled.train_step(tokens, step, 3)
        assert graph.pool_size()  # the step's nodes really were handed back for reuse
        assert loss == plain.train_step(tokens, step, 3)
    assert pooled.weights() == plain.weights()


def test_float_forward_matches_the_value_forward():
    model = make_model("cleanup")
    float_gpt = numeric_inference.FloatGPT(model.cfg, model.weights())
    tokens = TOKENIZER.encode("isabella")
    keys, values = model.empty_cache()
    fkeys, fvalues = model.empty_cache()
    for pos_id, token_id in enumerate(tokens[:-1]):
        logits = model.forward(token_id, pos_id, keys, values)
        flogits = float_gpt.forward(token_id, pos_id, fkeys, fvalues)
        assert flogits == pytest.approx([v.data for v in logits], abs=1e-15)


def losses_and_samples(model):
    losses = [
        model.train_step(TOKENIZER.encode(doc), step, len(DOCS)) for step, doc in enumerate(DOCS)
    ]
    rng = random.Random(3)
    return losses, [generate(model, rng, 0.5, TOKENIZER.bos) for _ in range(5)]


@pytest.fixture(scope="module")
def baseline_run():
    return losses_and_samples(make_model("baseline"))


@pytest.mark.parametrize("stage", SCALAR_STAGES)
def test_stage_matches_baseline_on_small_docs(stage, baseline_run):
    losses, samples = losses_and_samples(make_model(stage))
    assert losses == pytest.approx(baseline_run[0], abs=1e-12)
    assert samples == baseline_run[1]


def test_graph_node_counts_shrink_stage_by_stage():
    tokens = TOKENIZER.encode("emma")
    counts = {
        stage: count_graph_nodes(make_model(stage), tokens)
        for stage in ["baseline", "cleanup", "graph", "numeric_ce", "fused", "fused_norm"]
    }
    assert counts["baseline"] == counts["cleanup"] == counts["graph"]
    assert counts["graph"] > counts["numeric_ce"] > counts["fused"] > counts["fused_norm"]
    assert counts["fused"] < counts["numeric_ce"] / 10


def test_counting_nodes_leaves_the_weights_alone():
    model = make_model("fused_norm")
    before = model.weights()
    count_graph_nodes(model, TOKENIZER.encode("mia"))
    assert model.weights() == before
    assert all(p.grad == 0 for p in model.params)


@pytest.mark.parametrize("enabled", [True, False])
def test_gc_stage_restores_the_collector_state(enabled):
    model = make_model("gc")
    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        loss = model.train_step(TOKENIZER.encode("ava"), 0, 1)
        assert gc.isenabled() == enabled
        assert math.isfinite(loss)
    finally:
        gc.enable() if was else gc.disable()
