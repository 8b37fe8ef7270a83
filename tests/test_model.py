"""The baseline model: parameter count, init order, and whole-model gradients."""

import random

import pytest

from microgpt.config import GPTConfig
from microgpt.data import Tokenizer
from microgpt.model import GPT, init_weights, param_shapes
from microgpt.sampling import generate

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


def test_whole_model_gradient_matches_finite_differences():
    model, tok = make_model()
    tokens = tok.encode("isabella")
    loss = model.loss(tokens)
    loss.backward()
    rng = random.Random(0)
    # lm_head rows for absent tokens and unused positions have zero gradient; sample widely
    sample = rng.sample(range(model.num_params), 60)
    h = 1e-5
    checked_nonzero = 0
    for i in sample:
        p = model.params[i]
        analytic = p.grad
        orig = p.data
        p.data = orig + h
        up = model.loss(tokens).data
        p.data = orig - h
        down = model.loss(tokens).data
        p.data = orig
        numeric = (up - down) / (2 * h)
        assert analytic == pytest.approx(numeric, rel=1e-4, abs=1e-8), i
        checked_nonzero += abs(analytic) > 1e-6
    assert checked_nonzero > 20  # the sample really exercised the graph


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
