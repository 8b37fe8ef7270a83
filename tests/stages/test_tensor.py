"""The stage `tensor`: its batches (padding and masking leak nothing) and the
`--batch-size` flag, which only batched stages take (its gradients:
tests/stages/test_every_stage.py)."""

import pytest
from helpers import CFG, DOCS, assert_close, load_or_skip, setup

from microgpt import stages
from microgpt.tools.cli import main
from microgpt.train import train


def test_batch_gradient_is_the_token_weighted_mean_of_single_names():
    """Padding and masking must not leak: a padded batch equals its names one by one."""
    tensor = load_or_skip("tensor")
    tok, weights = setup()
    names = ["jax", "mackenzie", "zoe", "ruth"]  # different lengths, so three get padded
    batch = [tok.encode(name) for name in names]
    model = tensor.Model(CFG, tok.vocab_size, weights)
    loss = model.loss_and_grad(batch)
    batch_grad = model.grads.copy()
    counts = [len(tokens) - 1 for tokens in batch]
    expected_loss, expected_grad = 0.0, 0.0
    for tokens, n in zip(batch, counts):
        expected_loss += model.loss_and_grad([tokens]) * n / sum(counts)
        expected_grad = expected_grad + model.grads * (n / sum(counts))
    assert loss == pytest.approx(expected_loss, abs=1e-13)
    assert_close(batch_grad.tolist(), expected_grad.tolist())


def test_batched_training_lowers_the_loss():
    tensor = load_or_skip("tensor")
    tok, weights = setup()
    model = tensor.Model(CFG, tok.vocab_size, weights)
    losses = [loss for _, loss in train(model, DOCS, tok, 60, batch_size=8)]
    assert len(losses) == 60
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10 - 0.3


def test_batch_size_flag_needs_the_tensor_stage(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--stage", "flat", "--batch-size", "4", "--steps", "1"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    batched = ", ".join(s.name for s in stages.STAGES if s.batched)  # tensor, torch
    assert (
        len(err) == 1 and f"--batch-size needs a stage that trains on batches ({batched})" in err[0]
    )


def test_batch_size_flag_trains_the_tensor_stage(names_path, capsys):
    load_or_skip("tensor")
    argv = ["--stage", "tensor", "--batch-size", "16", "--steps", "5", "--samples", "3"]
    assert main(argv + ["--data", str(names_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[3].startswith("step    1 /    5 | loss ")
    assert len([line for line in lines if line.startswith("sample")]) == 3
