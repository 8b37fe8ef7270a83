"""Every stage whose weights are one flat vector (`tape`, `flat`, `tensor`, `jit`): its
hand-written gradient against central finite differences, the baseline's autograd and
(when installed) PyTorch in float64, on the default shape and on another one; and one
training step, Adam included, against the baseline's."""

import random

import pytest
from test_graphfree_stages import CFG, DOCS, assert_close, baseline_grads, flat_list, setup

from microgpt import stages
from microgpt.config import GPTConfig
from microgpt.data import Tokenizer
from microgpt.model import GPT, init_weights

STAGES = ["tape", "flat", "tensor", "jit"]


@pytest.fixture(params=STAGES)
def stage(request):
    missing = stages.missing_requirements(stages.BY_NAME[request.param])
    if missing:
        pytest.skip(f"stage {request.param} needs {' '.join(missing)}")
    return stages.load(request.param)


def loss_and_grad(model, tokens):
    """(loss, gradient as a list of floats) of one name, with no update."""
    if hasattr(model, "train_batch"):  # tensor: a batch of names; the gradient in `grads`
        return model.loss_and_grad([tokens]), model.grads.tolist()
    loss, grad = model.loss_and_grad(tokens)
    return loss, list(grad)  # a copy: jit's is its buffer, which the next call overwrites


def set_param(model, i, value):
    """Change one weight where the stage reads it (flat reads slices made after Adam)."""
    model.params[i] = value
    if hasattr(model, "_refresh_views"):
        model._refresh_views()


def test_gradient_matches_finite_differences(stage):
    tok, weights = setup(seed=3)
    tokens = tok.encode("mackenzie")
    model = stage.Model(CFG, tok.vocab_size, weights)
    _, grad = loss_and_grad(model, tokens)
    h = 1e-5
    checked = 0
    for i in random.Random(2).sample(range(len(grad)), 60):
        orig = model.params[i]
        set_param(model, i, orig + h)
        up, _ = loss_and_grad(model, tokens)
        set_param(model, i, orig - h)
        down, _ = loss_and_grad(model, tokens)
        set_param(model, i, orig)
        assert grad[i] == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-9), i
        checked += abs(grad[i]) > 1e-6
    assert checked > 15  # the sample reached many parameters with real gradients


@pytest.mark.parametrize("name", ["emma", "isabella", "brooklyn"])
def test_gradient_matches_baseline_autograd(stage, name):
    tok, weights = setup(seed=5)
    tokens = tok.encode(name)
    loss, grad = loss_and_grad(stage.Model(CFG, tok.vocab_size, weights), tokens)
    base_loss, base_grad, _ = baseline_grads(weights, tok.vocab_size, tokens)
    assert loss == pytest.approx(base_loss, abs=1e-13)
    assert_close(grad, base_grad)


@pytest.mark.parametrize("name", ["emma", "mackenzie"])
def test_gradient_matches_torch(stage, name):
    pytest.importorskip("torch")
    torch_oracle = stages.load("torch")
    tok, weights = setup(seed=9)
    tokens = tok.encode(name)
    loss, grads = torch_oracle.loss_and_grads(CFG, tok.vocab_size, weights, tokens)
    got_loss, got = loss_and_grad(stage.Model(CFG, tok.vocab_size, weights), tokens)
    assert got_loss == pytest.approx(loss, abs=1e-13)
    assert_close(got, flat_list(grads, tok.vocab_size))


def test_two_layers_and_a_short_block_match_baseline_autograd(stage):
    """Nothing hard-wires one layer, 16 dimensions or names shorter than the block."""
    cfg = GPTConfig(n_layer=2, n_embd=8, n_head=2, block_size=6)
    tok = Tokenizer.from_docs(DOCS)
    weights = init_weights(cfg, tok.vocab_size, random.Random(1))
    tokens = tok.encode("isabella")  # longer than the block: the loss stops at position 6
    baseline = GPT(cfg, tok.vocab_size, weights)
    base_loss = baseline.loss(tokens)
    base_loss.backward()
    loss, grad = loss_and_grad(stage.Model(cfg, tok.vocab_size, weights), tokens)
    assert loss == pytest.approx(base_loss.data, abs=1e-13)
    assert_close(grad, [p.grad for p in baseline.params])


def test_train_step_matches_one_baseline_step(stage):
    tok, weights = setup()
    tokens = tok.encode("penelope")
    model = stage.Model(CFG, tok.vocab_size, weights)
    baseline = GPT(CFG, tok.vocab_size, weights)
    assert model.train_step(tokens, 3, 10) == pytest.approx(
        baseline.train_step(tokens, 3, 10), abs=1e-13
    )
    assert_close(
        flat_list(model.weights(), tok.vocab_size), flat_list(baseline.weights(), tok.vocab_size)
    )
