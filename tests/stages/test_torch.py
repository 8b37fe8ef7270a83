"""The stage `torch`, the float64 oracle: one whole training step of the baseline, its
gradients and then Adam's update, against PyTorch (the flat-weight stages' gradients
against it: tests/stages/test_every_stage.py)."""

import pytest
from helpers import CFG, assert_close, baseline_grads, flat_list, load_or_skip, setup


def test_one_baseline_training_step_matches_torch():
    """All 4192 gradients of the scalar `Value` model, then the Adam update, against torch."""
    torch_oracle = load_or_skip("torch")
    tok, weights = setup()
    tokens = tok.encode("olivia")
    base_loss, base_grad, baseline = baseline_grads(weights, tok.vocab_size, tokens)
    assert len(base_grad) == 4192
    loss, grads = torch_oracle.loss_and_grads(CFG, tok.vocab_size, weights, tokens)
    assert base_loss == pytest.approx(loss, abs=1e-13)
    assert_close(base_grad, flat_list(grads, tok.vocab_size))

    baseline.optimizer.step(0, 1000)
    model = torch_oracle.Model(CFG, tok.vocab_size, weights)
    assert model.train_step(tokens, 0, 1000) == pytest.approx(base_loss, abs=1e-13)
    assert_close(
        flat_list(baseline.weights(), tok.vocab_size), flat_list(model.weights(), tok.vocab_size)
    )
