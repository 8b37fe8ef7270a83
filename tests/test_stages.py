"""Every stage is the baseline, faster: same losses, same names, interchangeable weights.

A stage whose optional package is missing (numpy, torch) is skipped with the package
named; a registered stage whose module is absent or fails to import is an error.
"""

import contextlib
import io
import json
from importlib.util import find_spec
from pathlib import Path

import pytest

from microgpt import checkpoint, stages
from microgpt.tools.cli import main
from microgpt.train import format_sample, format_step, losses_and_samples

REFERENCE = Path(__file__).parent / "reference" / "baseline_1000_steps.txt"
# the baseline's first 100 losses (full precision) and 20 names, written by the baseline;
# test_baseline_still_writes_its_100_step_reference keeps the file honest
REFERENCE_100 = Path(__file__).parent / "reference" / "baseline_100_steps.json"
EQUIVALENCE_STEPS = 100
TOLERANCE = 1e-12  # absolute, per step: summation order may differ, nothing else
FULL_RUN_FROM = stages.names().index("numeric_ce")  # the stages fast enough for 1000 steps

pytestmark = pytest.mark.usefixtures("frozen_gc")  # big graphs of Value nodes: see conftest

OTHER_STAGES = [s.name for s in stages.STAGES if s.name != "baseline"]


def load_or_skip(name):
    """The stage's module; skipped only when an optional package is not installed."""
    stage = stages.BY_NAME[name]
    missing = stages.missing_requirements(stage)
    if missing:
        pytest.skip(f"stage {name} needs {' '.join(missing)} (pip install {' '.join(missing)})")
    if find_spec(stage.module_name) is None:
        pytest.skip(f"{stage.module_name} is missing (reported by test_every_stage_has_a_module)")
    return stages.load(name)


def runnable_names():
    """Stages that can run here (module present, packages installed), in pass order."""
    return [s.name for s in stages.available() if find_spec(s.module_name) is not None]


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


@pytest.mark.heavy  # the scalar stages take seconds
@pytest.mark.parametrize("name", OTHER_STAGES)
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


def reference_lines():
    lines = REFERENCE.read_text().splitlines()
    steps = [line for line in lines if line.startswith("step ")]
    samples = [line for line in lines if line.startswith("sample ")]
    assert len(steps) == 1000 and len(samples) == 20  # the file is whole
    return steps, samples


@pytest.mark.slow
@pytest.mark.parametrize("name", stages.names()[FULL_RUN_FROM:])
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
