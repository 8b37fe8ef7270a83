"""The Python API and the book's helpers answer whatever a reader passes them.

What the command line refuses, the functions refuse too, with the project's error and
one line (`microgpt.arguments.ArgumentError`); no helper hangs or calls two different
shapes equal; an exercise checker handed a function that forgets `return`, returns a
`Value` or the wrong shape gives a wrong-answer verdict with a hint. A property-based
test calls every public helper of `microgpt.book` and of the API with generated
arguments: each call ends in a result, a verdict or the project's one-line error, in
bounded time.
"""

import ast
import importlib
import inspect
import math
import os
import pkgutil
import random
import signal
import warnings
from contextlib import contextmanager

import nbformat
import pytest
from helpers import cli_env, record, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import microgpt
from conftest import collector_frozen
from microgpt import stages
from microgpt.arguments import ArgumentError
from microgpt.book import (
    breakdown,
    exercises,
    exercises_passes,
    graph_stats,
    notebook,
    passes,
    yardsticks,
)
from microgpt.config import GPTConfig
from microgpt.data import load_dataset
from microgpt.engine import Value
from microgpt.errors import MicrogptError
from microgpt.tools import timing

run_module = importlib.import_module("microgpt.train")  # `microgpt.train` is also a function

DOCS = ["emma", "olivia", "ava", "isabella", "sophia", "mia"]
FLAT = stages.load("flat")


@pytest.fixture(scope="module")
def run():
    return run_module.Run(DOCS, FLAT)


def refused(fn, *fragments):
    """The `ArgumentError` that `fn()` raises: one line holding every fragment."""
    with pytest.raises(ArgumentError) as caught:
        fn()
    message = str(caught.value)
    assert "\n" not in message and all(f in message for f in fragments), message
    record(call_text(fn), "ArgumentError", message)
    return message


def call_text(fn):
    """The call a `lambda: ...` makes, as written in the test: the table's input."""
    try:
        tree = ast.parse(inspect.getsource(fn).strip())
    except (OSError, SyntaxError):
        return repr(fn)
    bodies = [ast.unparse(node.body) for node in ast.walk(tree) if isinstance(node, ast.Lambda)]
    return bodies[0] if bodies else repr(fn)


# ---------------------------------------------------------------------------------------
# class 6: the API refuses what the CLI refuses


def test_the_api_refuses_what_the_command_line_refuses(run):
    refused(lambda: run.sample(3, temperature=-0.5), "temperature", "-0.5")
    refused(lambda: run.sample(3, temperature=math.inf), "temperature", "inf")
    refused(lambda: run.sample(3, temperature=math.nan), "temperature", "nan")
    refused(lambda: run.sample(-1), "num_samples")
    refused(lambda: run.sample(2.5), "num_samples", "whole number")
    refused(lambda: list(run.train(0)), "num_steps")
    refused(lambda: run_module.Run("input.txt", FLAT), "list of names", "load_dataset(path)")
    refused(lambda: run_module.Run([], FLAT), "empty")
    refused(lambda: run_module.Run(["emma", ""], FLAT), "docs[1]")
    refused(lambda: run_module.Run(["emma", 3], FLAT), "docs[1]")
    refused(lambda: run_module.Run(["a\nb"], FLAT), "cannot be part of a name")
    refused(lambda: run_module.Run(DOCS, "flat"), "stages.load('flat')")
    refused(lambda: run_module.Run(DOCS, FLAT, seed="42"), "seed")
    refused(lambda: load_dataset(b"path"), "path", "bytes")
    refused(lambda: load_dataset(""), "path")
    refused(lambda: microgpt.sample_names(run.model, run.tokenizer, 42), "random.Random")
    refused(lambda: microgpt.Tokenizer.from_docs("emma"), "list of names")
    refused(lambda: run.tokenizer.encode("zzz"), "not in the vocabulary")
    refused(lambda: run.tokenizer.decode([run.tokenizer.bos]), "token ids")
    refused(lambda: list(run_module.train(run.model, DOCS, run.tokenizer, 2, batch_size=4)))


def test_a_single_stage_name_is_one_stage_not_its_letters(capsys):
    with collector_frozen():
        result = passes.time_stages(DOCS, "flat", steps=1, rounds=1)
    assert list(result) == ["flat"]
    refused(lambda: passes.time_stages(DOCS, "f"), "stage's name", "'f'")


def test_names_longer_than_the_context_are_cut_and_said_once(tmp_path):
    long = ["a" * 40, "b" * 30, "emma"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_module.Run(long, FLAT)
        run_module.Run(DOCS, FLAT)  # no long name: nothing said
    notes = [w for w in caught if issubclass(w.category, run_module.LongNamesWarning)]
    assert len(notes) == 1
    assert "2 of the names are longer than the context of 16 tokens" in str(notes[0].message)
    names = tmp_path / "names.txt"
    names.write_text("\n".join(long * 5) + "\n")
    result = run_cli(
        ["--steps", "2", "--samples", "1", "--stage", "flat"], tmp_path, cli_env(tmp_path, names)
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "microgpt: warning: 10 of the names" in result.stderr


# ---------------------------------------------------------------------------------------
# class 7: no hang, no misjudged comparison


def test_helpers_that_loop_refuse_zero_steps_and_rounds():
    refused(lambda: passes.time_stages(DOCS, ["flat"], steps=0), "steps", "0")
    refused(lambda: passes.time_stages(DOCS, ["flat"], rounds=0), "rounds", "0")
    refused(lambda: passes.time_stages(DOCS, []), "empty")
    refused(lambda: passes.time_stages(DOCS, ["flat", "flat"]), "twice")
    refused(lambda: timing.time_round(FLAT, DOCS, 0, 0), "num_steps")
    refused(lambda: timing.time_round(FLAT, DOCS, 1, 0, budget=-1), "budget")
    refused(lambda: timing.side_by_side({"flat": FLAT}, DOCS, 1, 0), "rounds")
    assert timing.interleave({"a": 1}, 0, lambda s: 1) == {"a": []}  # nothing asked


@pytest.mark.parametrize(
    "ours, reference",
    [
        ([[1, 2, 3], [4, 5, 6]], [[1, 2], [3, 4], [5, 6]]),
        ({"a": 1, "b": 2}, {"a": 1, "c": 2}),
        ([1, 2, 3, 4], [[1, 2], [3, 4]]),
        ({"w": [[1.0, 2.0]]}, {"w": [1.0, 2.0]}),
        ([[1], [2, 3]], [[1, 2], [3]]),
    ],
)
def test_cmp_never_calls_two_shapes_equal(capsys, ours, reference):
    assert notebook.cmp("x", ours, reference) is False
    out = capsys.readouterr().out
    assert "differs" in out and "exact: True" not in out and out.count("\n") == 1


def test_cmp_still_calls_equal_values_equal(capsys):
    assert notebook.cmp("x", {"b": [1.0, 2.0], "a": [[3.0]]}, {"a": [[3.0]], "b": (1.0, 2.0)})
    assert "exact: True" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------
# class 8: the notebook helpers and the exercise checkers answer the reader

CHECKERS = [
    getattr(module, name)
    for module in (exercises, exercises_passes)
    for name in sorted(vars(module))
    if name.startswith("check_") and callable(getattr(module, name))
]
WRONG_FUNCTIONS = {
    "forgets return": lambda *args, **kwargs: None,
    "returns a Value": lambda *args, **kwargs: Value(1.0),
    "returns the wrong shape": lambda *args, **kwargs: [[1.0, 2.0, 3.0]],
    "returns a str": lambda *args, **kwargs: "x",
    "returns a dict": lambda *args, **kwargs: {"a": 1},
    "is not a function": 3,
}


@pytest.mark.parametrize("checker", CHECKERS, ids=lambda c: c.__name__)
def test_checkers_give_a_verdict_for_any_wrong_function(checker):
    for what, fn in WRONG_FUNCTIONS.items():
        verdict = checker(fn)
        record(f"{checker.__name__}(f), f {what}", "wrong answer", verdict.message)
        assert isinstance(verdict, exercises.Check) and not verdict, (what, verdict)
        assert verdict.message.startswith("✗ ") and "\n" not in verdict.message, what


@pytest.mark.parametrize("checker", [exercises.check_softmax, exercises.check_rmsnorm])
def test_a_forgotten_return_or_a_value_gets_a_hint(checker):
    assert "forget `return`" in checker(WRONG_FUNCTIONS["forgets return"]).message
    assert "return plain floats" in checker(WRONG_FUNCTIONS["returns a Value"]).message


def test_notebook_helpers_say_what_to_pass(run):
    graph_run = run_module.Run(DOCS, stages.load("graph"))
    refused(lambda: notebook.progress(i for i in range(3)), "no length", "total=")
    assert list(notebook.progress((i for i in range(3)), total=3)) == [0, 1, 2]
    refused(lambda: notebook.train_live(run, 3, log_every=0), "log_every")
    refused(lambda: passes.prove_same_as_baseline(DOCS, "flat", num_steps=0), "num_steps")
    refused(lambda: breakdown.step_breakdown("flat", DOCS, steps=0), "steps")
    refused(lambda: graph_stats.count_graph_nodes(run.model, [0, 1, 2]), "builds a graph", "flat")
    assert graph_stats.count_graph_nodes(graph_run.model, [0, 1, 2]) > 0
    weights = run.model.weights()
    too_many = [0] * (GPTConfig().block_size + 1)
    refused(lambda: notebook.attention_weights(GPTConfig(), weights, too_many), "block_size 16")
    refused(lambda: notebook.attention_weights(GPTConfig(), {"wte": []}, [0]), "weights")
    refused(lambda: yardsticks.model_loss(run.model, [], run.tokenizer), "docs is empty")
    other = microgpt.Tokenizer.from_docs(["xyz"])
    refused(lambda: yardsticks.model_loss(run.model, ["xyz"], other), "tokenizer")
    refused(lambda: notebook.show_source(3), "show_source")


# ---------------------------------------------------------------------------------------
# every public helper, with generated arguments


# what a checker is written with (`exercises_passes` uses them), not what a reader calls;
# the checkers themselves are called with everything, here and above
CHECKER_PARTS = {"Check", "Wrong", "checker", "call", "close"}
# helpers whose call with no argument is a whole experiment of a chapter (a minute of
# training): they get at least one generated argument
WHOLE_EXPERIMENTS = {"microgpt.book.experiments.compare_pooling"}


def public_callables():
    """(name, callable) of every public function and class of `microgpt.book`'s modules
    and of the package's API (`microgpt.__all__`)."""
    found = {}
    book = importlib.import_module("microgpt.book")
    modules = [book] + [
        importlib.import_module(f"microgpt.book.{info.name}")
        for info in pkgutil.iter_modules(book.__path__)
    ]
    for module in modules:
        if module.__name__ == "microgpt.book.checks":
            continue  # checks of arguments, each called by `@checked` with its label
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if module.__name__ == "microgpt.book.exercises" and name in CHECKER_PARTS:
                continue
            if inspect.isclass(obj) and issubclass(obj, (BaseException, stages.graph.Model)):
                continue  # exceptions; a stage's model (its shape checks are the config's)
            if callable(obj):
                found[f"{module.__name__}.{name}"] = obj
    for name in microgpt.__all__:
        obj = getattr(microgpt, name)
        if name in ("MicrogptError", "GPTConfig", "AdamConfig"):
            continue  # an exception; the configs' checks are those of the model's shape
        found[f"microgpt.{name}"] = obj
    return sorted(found.items())


PUBLIC = public_callables()


def hostile_values():
    """Values of every kind a reader might pass: wrong types, empty, huge, wrong shapes,
    and some right ones (so that later checks are reached too)."""
    flat_run = run_module.Run(DOCS, FLAT)
    graph_run = run_module.Run(DOCS, stages.load("graph"))
    notebook_doc = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    return [
        None, True, False, -1, 0, 1, 2, -(10**30), 0.5, -0.5, math.nan, math.inf, 1e308,
        "", "flat", "baseline", "emma", "\x1b]0;title\x07", "x" * 10_000, b"bytes",
        [], [[]], [1, 2, 3], [0, 1, 2], [[1, 2, 3], [4, 5, 6]], list(DOCS), ["a" * 40],
        [None], list(range(40)), ("flat",), {}, {"a": 1}, object(),
        Value(1.0), Value(2.0) * Value(3.0), GPTConfig(), random.Random(1), FLAT,
        flat_run, flat_run.model, flat_run.tokenizer, flat_run.model.weights(),
        graph_run.model, notebook_doc,
        lambda *args, **kwargs: None,
        lambda *args, **kwargs: Value(1.0),
        lambda *args, **kwargs: [[1.0, 2.0]],
    ]  # fmt: skip


VALUES = hostile_values()
value = st.one_of(st.sampled_from(VALUES), st.builds(lambda: (i for i in range(3))))


class Hang(Exception):
    pass


@contextmanager
def time_bound(seconds):
    def expire(signum, frame):
        raise Hang(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def positional_range(fn):
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return 0, 3
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = sum(1 for p in positional if p.default is p.empty)
    most = len(positional) + (2 if any(p.kind == p.VAR_POSITIONAL for p in params) else 0)
    return required, min(max(most, required), 6)


@pytest.fixture(scope="module", autouse=True)
def quiet_data(tmp_path_factory):
    """Data for helpers that read the default names: a small file, no download."""
    folder = tmp_path_factory.mktemp("api")
    names = folder / "names.txt"
    names.write_text("\n".join(DOCS) + "\n")
    saved = {k: os.environ.get(k) for k in ("MICROGPT_DATA", "MICROGPT_DATA_URL")}
    os.environ.update(MICROGPT_DATA=str(names), MICROGPT_DATA_URL="http://127.0.0.1:9/n.txt")
    yield
    for key, old in saved.items():
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


@pytest.mark.parametrize("name, fn", PUBLIC, ids=[name for name, _ in PUBLIC])
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_every_public_helper_answers_any_arguments(name, fn, data, capsys):
    low, high = positional_range(fn)
    low = max(low, 1) if name in WHOLE_EXPERIMENTS else low
    args = data.draw(st.lists(value, min_size=low, max_size=high), label="args")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with time_bound(30), collector_frozen():
                result = fn(*args)
                if inspect.isgenerator(result):  # the work of a generator is in its items
                    for _, _ in zip(range(3), result):
                        pass
        except MicrogptError as e:
            message = str(e)
            assert message and "\n" not in message, (name, message)
    capsys.readouterr()
