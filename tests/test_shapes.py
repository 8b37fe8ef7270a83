"""The model's shape, checked once: from the command line (makemore's flag names), the
Python API and checkpoints; memory estimated before a run and refused when it cannot
fit; the held-out loss of `--eval-every`; the commands as the README types them."""

import contextlib
import io
import json
import random
import resource
import sys
import tracemalloc
import types

import pytest
from helpers import DOCS, ROOT, assert_one_line, cli_env, load_or_skip, run_cli

from microgpt import checkpoint, evaluate, memory, stages
from microgpt.config import AdamConfig, ConfigError, GPTConfig
from microgpt.data import Tokenizer
from microgpt.model import init_weights
from microgpt.sampling import sample_names
from microgpt.tools.args import OUT_OF_MEMORY
from microgpt.tools.cli import main
from microgpt.train import Run, format_eval, format_held_out, format_step

SMALL = GPTConfig(n_layer=2, n_embd=8, n_head=2, block_size=6)
SMALL_FLAGS = ["--n-layer", "2", "--n-embd", "8", "--n-head", "2", "--block-size", "6"]


def cli(argv):
    """(exit code, stdout, stderr) of `python -m microgpt ARGV`, in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as e:  # argparse
            code = e.code
    return code, out.getvalue(), err.getvalue()


# ---------------------------------------------------------------------------------------
# one validation of the shape


@pytest.mark.parametrize(
    "fields, fragment",
    [
        ({"n_embd": 15}, "n_embd (15) must be a multiple of n_head (4)"),
        ({"n_head": 32}, "must be a multiple of n_head (32)"),
        ({"n_head": 0}, "n_head must be at least 1, not 0"),
        ({"n_embd": 0}, "n_embd must be at least 1"),
        ({"n_layer": 0}, "n_layer must be at least 1"),
        ({"block_size": 0}, "block_size must be at least 1"),
        ({"block_size": -5}, "block_size must be at least 1, not -5"),
        ({"n_layer": 1.5}, "n_layer must be a whole number, not 1.5"),
        ({"n_embd": "16"}, "n_embd must be a whole number, not '16'"),
        ({"n_head": True}, "n_head must be a whole number, not True"),
        ({"n_layer": -(10**5000)}, "not a huge number"),
        ({"init_std": float("nan")}, "init_std must be a finite number"),
        ({"init_std": -0.1}, "init_std must be at least 0"),
    ],
)
def test_a_shape_no_stage_can_run_is_one_line_of_our_error(fields, fragment):
    with pytest.raises(ConfigError) as e:
        GPTConfig(**fields)
    assert fragment in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "fields, fragment",
    [
        ({"lr": 0}, "lr must be above 0"),
        ({"lr": float("inf")}, "lr must be a finite number"),
        ({"lr": -0.01}, "lr must be above 0"),
        ({"beta1": 1.0}, "beta1 must be at least 0 and below 1"),
        ({"beta2": -0.1}, "beta2 must be at least 0"),
        ({"eps": 0.0}, "eps must be above 0"),
        ({"decay": "yes"}, "decay must be True or False"),
    ],
)
def test_an_optimizer_setting_no_run_can_use_is_refused(fields, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        AdamConfig(**fields)


def test_every_valid_shape_is_accepted():
    for fields in ({}, {"n_embd": 4, "n_head": 4}, {"n_head": 1}, {"block_size": 1}):
        assert GPTConfig(**fields).n_embd % GPTConfig(**fields).n_head == 0


def test_the_python_api_refuses_before_any_work():
    """`Run(docs, stage, cfg=GPTConfig(n_embd=15, n_head=4))` never reaches a stage."""
    with pytest.raises(ConfigError, match="multiple of n_head"):
        Run(DOCS, stages.load("flat"), cfg=GPTConfig(n_embd=15, n_head=4))


def test_a_checkpoint_shape_goes_through_the_same_check():
    fields = GPTConfig().to_dict() | {"n_embd": 15}
    with pytest.raises(ValueError, match=r"config n_embd \(15\) must be a multiple of n_head"):
        checkpoint.check_config(fields)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--n-embd", "15"], "--n-embd (15) must be a multiple of --n-head (4)"),
        (["--n-embd", "16", "--n-head", "3"], "must be a multiple of --n-head (3)"),
        (["--n-head", "0"], "argument --n-head: '0' must be at least 1"),
        (["--n-layer", "-1"], "--n-layer"),
        (["--n-layer=-1"], "argument --n-layer: '-1' must be at least 1"),
        (["--block-size", "0"], "argument --block-size: '0' must be at least 1"),
        (["--n-embd", "1.5"], "argument --n-embd: '1.5' is not a whole number"),
        (["--learning-rate", "0"], "argument --learning-rate: '0' must be a finite number above 0"),
        (["--learning-rate", "nan"], "must be a finite number above 0"),
        (["--learning-rate", "inf"], "must be a finite number above 0"),
        (["--learning-rate", "fast"], "'fast' is not a number"),
        (["--eval-every", "0"], "argument --eval-every: '0' must be at least 1"),
    ],
)
def test_impossible_shape_flags_exit_2_with_one_line(args, fragment):
    code, out, err = cli(args)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and fragment in err, err


def test_impossible_shape_as_typed(tmp_path):
    result = run_cli(["--n-embd", "15", "--n-head", "4"], tmp_path, cli_env(tmp_path))
    assert_one_line(result, 2, "--n-embd (15) must be a multiple of --n-head (4)")
    assert result.stdout == ""


# ---------------------------------------------------------------------------------------
# memory, bounded up front


def test_a_too_big_shape_is_refused_up_front_with_the_estimate(tmp_path, names_path):
    args = ["--n-layer", "64", "--n-embd", "65536", "--stage", "tensor", "--data", str(names_path)]
    result = run_cli(args, tmp_path, cli_env(tmp_path), timeout=60)
    err = assert_one_line(result, 1, "this model needs about", "GiB", "is left")
    assert "the machine's" in err or "ulimit -v" in err
    assert result.stdout == ""  # refused before the first line of the run


def test_under_ulimit_v_the_limit_is_the_address_space(tmp_path, names_path):
    """8 layers x 1024 wide fit a machine, not an address space of 2 GB."""
    load_or_skip("tensor")

    def two_gigabytes():
        resource.setrlimit(resource.RLIMIT_AS, (2 * 10**9, resource.RLIM_INFINITY))

    args = ["--n-layer", "8", "--n-embd", "1024", "--stage", "tensor", "--data", str(names_path)]
    result = run_cli(args, tmp_path, cli_env(tmp_path), preexec_fn=two_gigabytes, timeout=60)
    err = assert_one_line(result, 1, "this model needs about 6.1 GiB", "ulimit -v 1953125")
    assert "weights and Adam 6.0 GiB" in err


def test_a_batch_that_cannot_fit_is_refused_before_its_first_step(names_path):
    load_or_skip("tensor")
    run = Run(DOCS, stages.load("tensor"))
    limit = (50 * 2**20, "a test's 50 MiB")
    need = memory.check_fits("float64", GPTConfig(), 27, 1, 10, limit)
    assert need.total < limit[0]
    with pytest.raises(memory.MemoryLimitError, match="one step on 100,000 names"):
        memory.check_fits("float64", GPTConfig(), 27, 100_000, 10, limit)
    with pytest.raises(memory.MemoryLimitError, match="one step on 10,000,000 names"):
        next(run.train(1, 10_000_000))


def test_a_vocabulary_of_many_characters_is_refused_for_the_scalar_stages():
    """A million distinct characters: gigabytes of `Value`s before the first step."""
    need = memory.estimate("values", GPTConfig(), 1_000_001)
    assert need.weights > 4 * 2**30 and need.activations > 100 * 2**30
    with pytest.raises(memory.MemoryLimitError, match="1,000,001 tokens in its vocabulary"):
        memory.check_fits("values", GPTConfig(), 1_000_001, limit=(8 * 2**30, "8 GiB"))


def test_a_memory_error_anywhere_is_one_line_exit_1(monkeypatch, small_names):
    def out_of_memory(self, *args):
        raise MemoryError

    monkeypatch.setattr(Run, "train", out_of_memory)
    code, _, err = cli(["--stage", "flat", "--data", str(small_names), "--steps", "2"])
    assert code == 1
    assert err == f"microgpt: error: {OUT_OF_MEMORY}\n"


def test_a_resource_module_without_getrlimit_means_no_address_space_limit(monkeypatch):
    """Pyodide has a `resource` module without getrlimit: the browser trains unlimited."""
    monkeypatch.setitem(sys.modules, "resource", types.ModuleType("resource"))
    assert memory.address_space_bytes() is None


def test_the_limit_is_the_smaller_of_machine_and_address_space(monkeypatch):
    monkeypatch.setattr(memory, "machine_bytes", lambda: 64 * 2**30)
    monkeypatch.setattr(memory, "address_space_bytes", lambda: None)
    room, source = memory.memory_limit()
    assert room < 64 * 2**30 and source == "the machine's 64.0 GiB"
    monkeypatch.setattr(memory, "address_space_bytes", lambda: 2**30)
    room, source = memory.memory_limit()
    assert room < 2**30 and source == f"ulimit -v {2**20}"


# the stages whose allocations tracemalloc sees (numba's and PyTorch's it does not)
MEASURABLE = ["baseline", "graph", "fused", "tape", "flat", "tensor"]
SHAPES = [(1, 16, 16, 27, 1), (2, 32, 16, 27, 1), (1, 16, 8, 300, 1), (2, 32, 16, 27, 8)]


@pytest.mark.heavy
@pytest.mark.parametrize(
    "name",  # the graph of the two scalar stages takes tens of seconds: `make test` only
    [
        pytest.param(n, marks=pytest.mark.slow) if n in ("baseline", "graph") else n
        for n in MEASURABLE
    ],
)
def test_the_estimate_bounds_what_a_step_allocates(name, frozen_gc):
    """Above what making the model and one step on block-long names allocate, and
    within a small factor of it: an estimate that refuses what cannot fit, and only that."""
    module = load_or_skip(name)
    for n_layer, n_embd, block, vocab, batch in SHAPES:
        if batch > 1 and not hasattr(module.Model, "train_batch"):
            continue
        cfg = GPTConfig(n_layer=n_layer, n_embd=n_embd, n_head=4, block_size=block)
        rng = random.Random(0)
        weights = init_weights(cfg, vocab, rng)
        tokens = [[rng.randrange(vocab) for _ in range(block + 1)] for _ in range(batch)]
        tracemalloc.start()
        try:
            model = module.Model(cfg, vocab, weights)
            if batch > 1:
                model.train_batch(tokens, 0, 10)
            else:
                model.train_step(tokens[0], 0, 10)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        need = memory.estimate(module.Model.memory_kind, cfg, vocab, batch, block).total
        shape = f"{name} {n_layer}x{n_embd} block {block} vocab {vocab} batch {batch}"
        assert peak <= need <= 4 * peak, f"{shape}: allocated {peak:,}, estimated {need:,}"


def test_every_stage_says_how_it_stores_its_numbers():
    for stage in stages.STAGES:
        if stages.why_not_runnable(stage) is None:
            assert stages.load(stage.name).Model.memory_kind in memory.STORAGE, stage.name


# ---------------------------------------------------------------------------------------
# shapes from the command line, into checkpoints and back


@pytest.fixture
def small_names(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("\n".join(DOCS) + "\n")
    return path


def test_shape_flags_train_the_shape_the_python_api_trains(small_names, tmp_path):
    ckpt = tmp_path / "small.json"
    args = [*SMALL_FLAGS, "--learning-rate", "0.02", "--stage", "flat", "--steps", "4"]
    code, out, err = cli([*args, "--data", str(small_names), "--samples", "3", "--save", str(ckpt)])
    assert code == 0, err
    run = Run(DOCS, stages.load("flat"), cfg=SMALL, adam=AdamConfig(lr=0.02))
    steps = [format_step(step, 4, loss) for step, loss in run.train(4)]
    lines = out.splitlines()
    assert lines[2] == f"num params: {run.model.num_params}"
    assert lines[3:7] == steps
    # the checkpoint carries the shape, and sampling from it uses it
    saved = json.loads(ckpt.read_text())
    assert saved["config"] == SMALL.to_dict()
    code, sampled, err = cli(["sample", "--load", str(ckpt), "--samples", "5", "--seed", "3"])
    assert code == 0, err
    expected = sample_names(run.model, run.tokenizer, random.Random(3), 5)
    assert sampled.splitlines() == [f"sample {i + 1:2d}: {n}" for i, n in enumerate(expected)]


def test_a_shape_a_checkpoint_cannot_hold_is_refused_before_training(small_names, tmp_path):
    args = ["--n-embd", "4096", "--n-head", "4", "--stage", "tensor", "--data", str(small_names)]
    code, out, err = cli([*args, "--save", str(tmp_path / "big.json")])
    assert code == 1 and out == ""
    assert "a checkpoint holds n_embd up to 2,048" in err and err.count("\n") == 1


def test_the_default_run_takes_the_defaults_of_the_flags(small_names):
    given = ["--n-layer", "1", "--n-embd", "16", "--n-head", "4", "--block-size", "16"]
    given += ["--learning-rate", "0.01"]
    base = ["--stage", "flat", "--steps", "3", "--samples", "2", "--data", str(small_names)]
    assert cli(base) == cli([*base, *given])


# ---------------------------------------------------------------------------------------
# the held-out loss


def test_split_is_makemores():
    assert evaluate.held_out_size(32033) == 1000
    assert evaluate.held_out_size(5000) == 500
    assert evaluate.held_out_size(9) == 0
    docs = [f"n{i}" for i in range(100)]
    train, held = evaluate.split(docs)
    assert train == docs[:90] and held == docs[90:]


def test_eval_every_prints_the_split_the_bigram_and_both_losses(small_names):
    args = ["--stage", "tensor", "--steps", "5", "--eval-every", "2", "--samples", "1"]
    load_or_skip("tensor")
    code, out, err = cli([*args, "--data", str(small_names)])
    assert code == 0, err
    run = Run(DOCS, stages.load("tensor"))
    held = run.hold_out()
    assert len(held) == 1  # a tenth of 18 names
    expected = [f"num docs: {len(run.docs)}", format_held_out(1, run.bigram_loss())]
    expected += ["vocab size: 27", f"num params: {run.model.num_params}"]
    for step, loss in run.train(5):
        expected.append(format_step(step, 5, loss))
        if step + 1 in (2, 4, 5):  # every 2 steps, and at the end
            expected.append(format_eval(step, 5, *run.evaluate()))
    assert out.splitlines()[: len(expected)] == expected
    assert [line[:4] for line in expected].count("eval") == 3


def test_eval_every_trains_the_first_names_the_original_trains(names_path):
    """The held-out names come from the end of the shuffled order: the step lines are the
    original run's while the training names last (here, 1000 steps < 31,033 names)."""
    load_or_skip("tensor")
    base = ["--stage", "tensor", "--steps", "30", "--samples", "0", "--data", str(names_path)]
    _, plain, _ = cli(base)
    _, evaluated, _ = cli([*base, "--eval-every", "10"])
    steps = [line for line in plain.splitlines() if line.startswith("step")]
    assert [line for line in evaluated.splitlines() if line.startswith("step")] == steps
    eval_lines = [line for line in evaluated.splitlines() if line.startswith("eval")]
    assert [line[:16] for line in eval_lines] == [
        "eval   10 /   30",
        "eval   20 /   30",
        "eval   30 /   30",
    ]
    assert evaluated.splitlines()[:2] == [
        "num docs: 31033",
        "held-out docs: 1000 | bigram loss 2.4627",
    ]


def test_eval_every_needs_names_to_hold_out(tmp_path):
    names = tmp_path / "few.txt"
    names.write_text("ann\nbob\neve\n")
    code, _, err = cli(["--stage", "flat", "--eval-every", "1", "--data", str(names)])
    assert code == 1
    assert err == (
        "microgpt: error: --eval-every needs at least 10 names to hold a tenth out; "
        "the data has 3\n"
    )


@pytest.mark.parametrize("name", ["flat", "tensor", "torch"])
def test_the_held_out_loss_is_the_same_in_every_stage(name):
    """`batch_loss` (tensor, torch) and the sampler's probabilities (the others) give the
    baseline's held-out loss."""
    tok = Tokenizer.from_docs(DOCS)
    weights = init_weights(SMALL, tok.vocab_size, random.Random(4))
    baseline = stages.load("baseline").Model(SMALL, tok.vocab_size, weights)
    expected = evaluate.mean_loss(baseline, DOCS, tok)
    model = load_or_skip(name).Model(SMALL, tok.vocab_size, weights)
    assert abs(evaluate.mean_loss(model, DOCS, tok) - expected) < 1e-12


# ---------------------------------------------------------------------------------------
# the README's commands, as typed


def test_readme_bigger_model_commands_as_typed(tmp_path, names_path):
    """The README's two commands, with smaller numbers: train a 2-layer model on batches
    with a held-out loss, save it, and sample from the checkpoint alone."""
    load_or_skip("tensor")
    env = cli_env(tmp_path, names_path)
    train = ["--n-layer", "2", "--n-embd", "16", "--n-head", "4", "--steps", "20"]
    train += ["--batch-size", "8", "--stage", "tensor", "--eval-every", "10", "--save", "big.json"]
    done = run_cli(train, tmp_path, env, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:2] == ["num docs: 31033", "held-out docs: 1000 | bigram loss 2.4627"]
    assert [line[:16] for line in lines if line.startswith("eval")] == [
        "eval   10 /   20",
        "eval   20 /   20",
    ]
    assert json.loads((tmp_path / "big.json").read_text())["config"]["n_layer"] == 2
    sampled = run_cli(["sample", "--load", "big.json"], tmp_path, env, timeout=60)
    assert sampled.returncode == 0, sampled.stderr
    assert len(sampled.stdout.splitlines()) == 20


@pytest.mark.slow
def test_readme_bigger_model_commands_exactly_as_written(tmp_path, names_path):
    readme = (ROOT / "README.md").read_text()
    assert "--n-layer 4 --n-embd 64 --n-head 4 --steps 200 --batch-size 32 \\" in readme
    load_or_skip("tensor")
    env = cli_env(tmp_path, names_path)
    train = ["--n-layer", "4", "--n-embd", "64", "--n-head", "4", "--steps", "200"]
    train += [
        "--batch-size",
        "32",
        "--stage",
        "tensor",
        "--eval-every",
        "100",
        "--save",
        "big.json",
    ]
    done = run_cli(train, tmp_path, env, timeout=600)
    assert done.returncode == 0, done.stderr
    evals = [line for line in done.stdout.splitlines() if line.startswith("eval")]
    assert len(evals) == 2
    held_out = float(evals[-1].rsplit(" ", 1)[1])
    assert held_out < 2.4627  # below the bigram's, after 200 batches of 32
    sampled = run_cli(["sample", "--load", "big.json"], tmp_path, env, timeout=60)
    assert sampled.returncode == 0 and len(sampled.stdout.splitlines()) == 20


def test_readme_eval_lines_are_what_the_command_prints(names_path):
    """The README quotes two lines of one run; they are that run's."""
    load_or_skip("tensor")
    readme = (ROOT / "README.md").read_text()
    command = "python -m microgpt --steps 200 --stage tensor --eval-every 100"
    assert f"`{command}`" in readme
    code, out, err = cli([*command.split()[3:], "--samples", "0", "--data", str(names_path)])
    assert code == 0, err
    lines = out.splitlines()
    for quoted in (lines[1], next(line for line in lines if line.startswith("eval  100"))):
        assert f"`{quoted}`" in readme, quoted
