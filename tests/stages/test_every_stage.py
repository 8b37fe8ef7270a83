"""What every stage shares: it is the baseline, faster. Same losses, same names,
interchangeable weights; the same gradients for the stages whose weights are one flat
vector; the same names drawn from the same generator. A stage's own pieces are tested
in its own file beside this one (test_scalar.py for the scalar-autograd chain).

A stage whose optional package is missing (numpy, torch) is skipped with the package
named; a registered stage whose module is absent or fails to import is an error.
"""

import contextlib
import io
import json
import random
from importlib.util import find_spec

import pytest
from helpers import (
    CFG,
    DOCS,
    ROOT,
    assert_close,
    baseline_grads,
    flat_list,
    load_or_skip,
    setup,
)

from microgpt import checkpoint, stages
from microgpt.config import GPTConfig
from microgpt.data import Tokenizer
from microgpt.model import GPT, init_weights, param_shapes
from microgpt.sampling import generate
from microgpt.tools.cli import main
from microgpt.train import Run, format_sample, format_step, losses_and_samples

REFERENCE = ROOT / "tests" / "reference" / "baseline_1000_steps.txt"
# the baseline's first 100 losses (full precision) and 20 names, written by the baseline;
# test_baseline_still_writes_its_100_step_reference keeps the file honest
REFERENCE_100 = ROOT / "tests" / "reference" / "baseline_100_steps.json"
EQUIVALENCE_STEPS = 100
TOLERANCE = 1e-12  # absolute, per step: summation order may differ, nothing else
FULL_RUN_FROM = stages.stage_names().index("numeric_ce")  # the stages fast enough for 1000 steps

pytestmark = pytest.mark.usefixtures("frozen_gc")  # big graphs of Value nodes: see conftest

OTHER_STAGES = [s.name for s in stages.STAGES if s.name != "baseline"]


def runnable_names():
    """Stages that can run here (module present, packages installed), in pass order."""
    return [s.name for s in stages.STAGES if stages.why_not_runnable(s) is None]


def test_every_stage_has_a_module():
    missing = [s.module_name for s in stages.STAGES if find_spec(s.module_name) is None]
    assert not missing, f"registered stages without a module: {', '.join(missing)}"


def test_every_stage_module_documents_its_pass():
    for name in runnable_names():
        module = stages.load(name)
        assert module.__doc__ and len(module.__doc__.strip()) > 40, name
        assert hasattr(module, "Model"), name


# ---------------------------------------------------------------------------------------
# equivalence with the baseline


@pytest.fixture(scope="session")
def baseline_reference(names_docs):
    """The baseline's 100-step losses and 20 names, as the baseline wrote them."""
    reference = json.loads(REFERENCE_100.read_text())
    return reference["losses"], reference["samples"]


@pytest.mark.slow
def test_baseline_still_writes_its_100_step_reference(names_docs, baseline_reference):
    losses, samples = losses_and_samples(names_docs, stages.load("baseline"), EQUIVALENCE_STEPS)
    assert (losses, samples) == baseline_reference  # bit for bit: it is the same code


def first_difference(losses, expected):
    for step, (a, b) in enumerate(zip(losses, expected)):
        if abs(a - b) > TOLERANCE:
            return f"step {step + 1}: {a!r} vs baseline {b!r} (diff {abs(a - b):.3g})"
    return None


# the graph-building stages before `fused` take tens of seconds here: `make check` leaves
# them to `make test` and checks them on small documents (tests/stages/test_scalar.py)
SLOWEST = {"cleanup", "numeric_inference", "graph", "numeric_ce"}


@pytest.mark.heavy  # the scalar stages take seconds
@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in SLOWEST else n for n in OTHER_STAGES],
)
def test_same_losses_and_samples_as_baseline(name, names_docs, baseline_reference):
    module = load_or_skip(name)
    expected_losses, expected_samples = baseline_reference
    losses, samples = losses_and_samples(names_docs, module, EQUIVALENCE_STEPS)
    assert len(losses) == EQUIVALENCE_STEPS
    assert all(isinstance(loss, float) for loss in losses), "train_step must return a float"
    assert first_difference(losses, expected_losses) is None, first_difference(
        losses, expected_losses
    )
    assert samples == expected_samples


# another shape: two layers, 8 wide, 2 heads, a block shorter than some names
OTHER_SHAPE = GPTConfig(n_layer=2, n_embd=8, n_head=2, block_size=6)
OTHER_SHAPE_STEPS = 20


@pytest.fixture(scope="module")
def baseline_on_another_shape():
    run = Run(DOCS, stages.load("baseline"), seed=7, cfg=OTHER_SHAPE)
    return [loss for _, loss in run.train(OTHER_SHAPE_STEPS)], run.sample(10)


@pytest.mark.parametrize("name", OTHER_STAGES)
def test_same_losses_and_samples_on_another_shape(name, baseline_on_another_shape):
    """Every stage trains every valid shape: 2 layers x 8 wide x 2 heads, block 6, the
    baseline's losses within 1e-12 and its names."""
    module = load_or_skip(name)
    expected_losses, expected_samples = baseline_on_another_shape
    run = Run(DOCS, module, seed=7, cfg=OTHER_SHAPE)
    losses = [loss for _, loss in run.train(OTHER_SHAPE_STEPS)]
    assert run.model.num_params == 2 * 27 * 8 + 6 * 8 + 2 * 12 * 8 * 8
    assert first_difference(losses, expected_losses) is None, first_difference(
        losses, expected_losses
    )
    assert run.sample(10) == expected_samples


def reference_lines():
    lines = REFERENCE.read_text().splitlines()
    steps = [line for line in lines if line.startswith("step ")]
    samples = [line for line in lines if line.startswith("sample ")]
    assert len(steps) == 1000 and len(samples) == 20  # the file is whole
    return steps, samples


@pytest.mark.slow
@pytest.mark.parametrize("name", stages.stage_names()[FULL_RUN_FROM:])
def test_full_run_prints_the_original_figures(name, names_docs):
    module = load_or_skip(name)
    expected_steps, expected_samples = reference_lines()
    losses, samples = losses_and_samples(names_docs, module, 1000)
    steps = [format_step(step, 1000, loss) for step, loss in enumerate(losses)]
    wrong = [(got, want) for got, want in zip(steps, expected_steps) if got != want]
    assert not wrong, f"{len(wrong)} loss lines differ, first: {wrong[0]}"
    assert [format_sample(i, s) for i, s in enumerate(samples)] == expected_samples


# ---------------------------------------------------------------------------------------
# the command line with every stage


def test_stages_command_lists_every_stage_on_one_line(capsys):
    assert main(["stages"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(stages.STAGES)
    for stage, line in zip(stages.STAGES, lines):
        assert line[2:].split()[0] == stage.name
        assert stage.summary in line
    assert sum(line.startswith("*") for line in lines) == 1


def cli_output(argv):
    """What `python -m microgpt ARGV` prints, checking that it succeeds."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    assert code == 0, err.getvalue()
    return out.getvalue()


@pytest.fixture(scope="session")
def baseline_short_run(names_path, tmp_path_factory, quiet_gc):
    """Output and checkpoint of a 3-step baseline run, and 5 names sampled from it."""
    ckpt = tmp_path_factory.mktemp("baseline") / "baseline.json"
    args = ["--stage", "baseline", "--steps", "3", "--samples", "5", "--data", str(names_path)]
    with quiet_gc():
        train_out = cli_output([*args, "--save", str(ckpt)])
        sample_out = cli_output(
            ["sample", "--load", str(ckpt), "--stage", "baseline", "--samples", "5"]
        )
    return train_out, ckpt, sample_out


@pytest.mark.parametrize("name", OTHER_STAGES)
def test_three_step_run_prints_what_baseline_prints(name, names_path, baseline_short_run):
    load_or_skip(name)
    args = ["--stage", name, "--steps", "3", "--samples", "5", "--data", str(names_path)]
    assert cli_output(args) == baseline_short_run[0]


def max_weight_difference(weights, expected):
    return max(
        abs(a - b)
        for key in expected
        for row, row_expected in zip(weights[key], expected[key])
        for a, b in zip(row, row_expected)
    )


@pytest.mark.parametrize("name", OTHER_STAGES)
def test_checkpoints_are_interchangeable(name, names_path, baseline_short_run, tmp_path):
    load_or_skip(name)
    _, baseline_ckpt, baseline_names = baseline_short_run
    sample = ["sample", "--samples", "5", "--load"]
    # the baseline's checkpoint samples the same names in this stage
    assert cli_output([*sample, str(baseline_ckpt), "--stage", name]) == baseline_names
    # this stage's checkpoint holds the baseline's weights ...
    ckpt = tmp_path / f"{name}.json"
    args = ["--stage", name, "--steps", "3", "--samples", "0", "--data", str(names_path)]
    cli_output([*args, "--save", str(ckpt)])
    assert json.loads(ckpt.read_text())["stage"] == name
    _, _, weights = checkpoint.load(ckpt)
    _, _, expected = checkpoint.load(baseline_ckpt)
    assert weights.keys() == expected.keys()
    assert max_weight_difference(weights, expected) <= TOLERANCE
    # ... and samples the same names in another stage as in its own
    other = next(n for n in reversed(runnable_names()) if n != name)
    own = cli_output([*sample, str(ckpt), "--stage", name])
    assert cli_output([*sample, str(ckpt), "--stage", other]) == own


# ---------------------------------------------------------------------------------------
# the stages whose weights are one flat vector (`tape`, `flat`, `tensor`, `jit`): the
# hand-written gradient against central finite differences, the baseline's autograd
# and (when installed) PyTorch in float64, on the default shape and on another one;
# and one training step, Adam included, against the baseline's


def test_vocabulary_has_every_letter():
    tok, _ = setup()
    assert tok.vocab_size == 27
    assert sum(r * c for _, r, c in param_shapes(CFG, 27)) == 4192


FLAT_WEIGHT_STAGES = ["tape", "flat", "tensor", "jit"]


@pytest.fixture(params=FLAT_WEIGHT_STAGES)
def stage(request):
    return load_or_skip(request.param)


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


# ---------------------------------------------------------------------------
# sampling: the same names from the same rng, which ends in the same state


@pytest.fixture(scope="module")
def baseline_samples():
    tok, weights = setup()
    rng = random.Random(7)
    baseline = GPT(CFG, tok.vocab_size, weights)
    return [generate(baseline, rng, 0.5, tok.bos) for _ in range(5)], rng.getstate()


@pytest.mark.parametrize("name", [*FLAT_WEIGHT_STAGES, "torch"])
def test_generate_draws_like_the_baseline(name, baseline_samples):
    module = load_or_skip(name)
    tok, weights = setup()
    model = module.Model(CFG, tok.vocab_size, weights)
    rng = random.Random(7)
    samples = [generate(model, rng, 0.5, tok.bos) for _ in range(5)]
    assert (samples, rng.getstate()) == baseline_samples
