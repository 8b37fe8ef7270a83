"""The graph-free stages and the oracle: `flat` without numpy, `tensor`'s batches, torch's
Adam step, and sampling that draws as the baseline does; plus the shared setup of the
flat-weight stages' gradient checks (tests/test_flat_weight_stages.py)."""

import random
import subprocess
import sys

import pytest

from microgpt import stages
from microgpt.config import GPTConfig
from microgpt.data import Tokenizer
from microgpt.model import GPT, init_weights, param_shapes
from microgpt.sampling import generate
from microgpt.train import train

# every letter of the alphabet, so the vocabulary is microgpt's 27 and the model has 4192 params
DOCS = ["emma", "olivia", "quinn", "jax", "zoe", "brooklyn", "hunter", "wyatt", "gavin", "derek"]
DOCS += ["xavier", "fiona", "ulysses", "penelope", "victor", "ruth", "mackenzie", "isabella"]
CFG = GPTConfig()


def setup(seed=42):
    tok = Tokenizer.from_docs(DOCS)
    return tok, init_weights(CFG, tok.vocab_size, random.Random(seed))


def flat_list(weights, vocab_size):
    return [v for name, _, _ in param_shapes(CFG, vocab_size) for row in weights[name] for v in row]


def baseline_grads(weights, vocab_size, tokens):
    """Loss and flat gradients from the baseline's scalar autograd."""
    model = GPT(CFG, vocab_size, weights)
    loss = model.loss(tokens)
    loss.backward()
    return loss.data, [p.grad for p in model.params], model


def assert_close(got, expected, tol=1e-12):
    worst = max(abs(a - b) for a, b in zip(got, expected, strict=True))
    assert worst <= tol, f"max abs difference {worst:.3g} > {tol:g}"


def test_vocabulary_has_every_letter():
    tok, _ = setup()
    assert tok.vocab_size == 27
    assert sum(r * c for _, r, c in param_shapes(CFG, 27)) == 4192


# ---------------------------------------------------------------------------
# flat (pure Python)


def test_flat_runs_without_numpy():
    code = (
        "import sys; sys.modules['numpy'] = None\n"
        "import random\n"
        "from microgpt.stages import flat\n"
        "from microgpt.train import losses_and_samples\n"
        "docs = ['emma', 'olivia', 'ava', 'mia']\n"
        "losses, names = losses_and_samples(docs, flat, 3, num_samples=2)\n"
        "print(len(losses), len(names))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["3", "2"]


# ---------------------------------------------------------------------------
# tensor (numpy)


def tensor_module():
    pytest.importorskip("numpy")
    from microgpt.stages import tensor

    return tensor


def test_batch_gradient_is_the_token_weighted_mean_of_single_names():
    """Padding and masking must not leak: a padded batch equals its names one by one."""
    tensor = tensor_module()
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
    tensor = tensor_module()
    tok, weights = setup()
    model = tensor.Model(CFG, tok.vocab_size, weights)
    losses = [loss for _, loss in train(model, DOCS, tok, 60, batch_size=8)]
    assert len(losses) == 60
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10 - 0.3


def test_batch_size_flag_needs_the_tensor_stage(capsys):
    from microgpt.tools.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--stage", "flat", "--batch-size", "4", "--steps", "1"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    batched = ", ".join(s.name for s in stages.STAGES if s.batched)  # tensor, torch
    assert (
        len(err) == 1 and f"--batch-size needs a stage that trains on batches ({batched})" in err[0]
    )


def test_batch_size_flag_trains_the_tensor_stage(names_path, capsys):
    tensor_module()
    from microgpt.tools.cli import main

    argv = ["--stage", "tensor", "--batch-size", "16", "--steps", "5", "--samples", "3"]
    assert main(argv + ["--data", str(names_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[3].startswith("step    1 /    5 | loss ")
    assert len([line for line in lines if line.startswith("sample")]) == 3


# ---------------------------------------------------------------------------
# torch (float64 oracle)


def torch_module():
    pytest.importorskip("torch")
    return stages.load("torch")


def test_one_baseline_training_step_matches_torch():
    """All 4192 gradients of the scalar `Value` model, then the Adam update, against torch."""
    torch_oracle = torch_module()
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


# ---------------------------------------------------------------------------
# sampling: the same names from the same rng, which ends in the same state


@pytest.fixture(scope="module")
def baseline_samples():
    tok, weights = setup()
    rng = random.Random(7)
    baseline = GPT(CFG, tok.vocab_size, weights)
    return [generate(baseline, rng, 0.5, tok.bos) for _ in range(5)], rng.getstate()


@pytest.mark.parametrize("stage", ["tape", "flat", "tensor", "jit", "torch"])
def test_generate_draws_like_the_baseline(stage, baseline_samples):
    missing = stages.missing_requirements(stages.BY_NAME[stage])
    if missing:
        pytest.skip(f"stage {stage} needs {' '.join(missing)}")
    module = stages.load(stage)
    tok, weights = setup()
    model = module.Model(CFG, tok.vocab_size, weights)
    rng = random.Random(7)
    samples = [generate(model, rng, 0.5, tok.bos) for _ in range(5)]
    assert (samples, rng.getstate()) == baseline_samples
