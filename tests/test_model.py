"""The baseline model: parameter count, init order, and whole-model gradients."""

import math
import random

import pytest

from microgpt.config import GPTConfig
from microgpt.data import Tokenizer
from microgpt.model import GPT, init_weights, param_shapes
from microgpt.sampling import generate
from microgpt.stages.numeric_inference import FloatGPT

pytestmark = pytest.mark.usefixtures("frozen_gc")  # big graphs of Value nodes: see conftest

DOCS = ["emma", "olivia", "ava", "isabella", "sophia", "mia"]


def make_model(seed=42):
    tok = Tokenizer.from_docs(DOCS)
    cfg = GPTConfig()
    return GPT(cfg, tok.vocab_size, init_weights(cfg, tok.vocab_size, random.Random(seed))), tok


def test_param_count_matches_microgpt_for_27_tokens():
    sizes = [rows * cols for _, rows, cols in param_shapes(GPTConfig(), 27)]
    assert sum(sizes) == 4192


def test_init_draws_in_microgpt_order():
    cfg = GPTConfig()
    weights = init_weights(cfg, 27, random.Random(42))
    rng = random.Random(42)
    for name, rows, cols in param_shapes(cfg, 27):
        expected = [[rng.gauss(0, 0.08) for _ in range(cols)] for _ in range(rows)]
        assert weights[name] == expected, name
    assert list(weights)[:3] == ["wte", "wpe", "lm_head"]


def float_loss(model, tokens):
    """The same mean cross-entropy on float copies of the weights: cheap to evaluate often."""
    next_probs = FloatGPT(model.cfg, model.weights()).sampler(1.0)
    n = model.cfg.positions(len(tokens))
    return sum(-math.log(next_probs(tokens[p], p)[tokens[p + 1]]) for p in range(n)) / n


def test_whole_model_gradient_matches_finite_differences():
    model, tok = make_model()
    tokens = tok.encode("isabella")
    loss = model.loss(tokens)
    loss.backward()
    assert float_loss(model, tokens) == pytest.approx(loss.data, rel=1e-12)
    rng = random.Random(0)
    # lm_head rows for absent tokens and unused positions have zero gradient; sample widely
    sample = rng.sample(range(model.num_params), 400)
    h = 1e-5
    checked_nonzero = 0
    for i in sample:
        p = model.params[i]
        analytic = p.grad
        orig = p.data
        p.data = orig + h
        up = float_loss(model, tokens)
        p.data = orig - h
        down = float_loss(model, tokens)
        p.data = orig
        numeric = (up - down) / (2 * h)
        assert analytic == pytest.approx(numeric, rel=1e-4, abs=1e-8), i
        checked_nonzero += abs(analytic) > 1e-6
    assert checked_nonzero > 100  # the sample really exercised the graph


def test_train_step_updates_every_used_parameter_and_zeroes_grads():
    model, tok = make_model()
    before = model.weights()
    loss = model.train_step(tok.encode("emma"), 0, 10)
    after = model.weights()
    assert loss > 0
    assert all(p.grad == 0 for p in model.params)
    assert after["layer0.attn_wq"] != before["layer0.attn_wq"]
    # Adam moves a parameter only where it has seen a gradient: wpe rows past the name stay
    assert after["wpe"][10] == before["wpe"][10]


def test_generate_stops_at_block_size_and_never_returns_bos():
    model, tok = make_model()
    rng = random.Random(1)
    for _ in range(10):
        ids = generate(model, rng, 2.0, tok.bos)
        assert len(ids) <= model.cfg.block_size
        assert tok.bos not in ids
