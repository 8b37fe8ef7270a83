"""What several test files share, written once: where things are, the command line run as
a user runs it, and the small model that the stages' gradient checks train.

Fixtures live in `tests/conftest.py`; these are plain functions and constants, imported
by name (`from helpers import run_cli`).
"""

import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from microgpt import stages
from microgpt.config import GPTConfig
from microgpt.data import Tokenizer
from microgpt.errors import single_line
from microgpt.model import GPT, init_weights, param_shapes

ROOT = Path(__file__).resolve().parent.parent  # the repository
# makemore's names.txt beside the repository (CI has it); the root conftest exports it
# to every test and notebook as MICROGPT_DATA, and `names_path` skips without it
SHARED_NAMES = ROOT.parent / "shared" / "data" / "names.txt"
# what reads as a measurement: a speed-up, a time, a share, a size (in prose, docstrings)
MEASURED = re.compile(
    r"(?<![\w.])\d(?:[\d,]*\d)?(?:\.\d+)?(?:x| ?(?:ms|µs|us|s|%|MiB|MB|KiB|KB|nodes))(?!\w)"
)

# ---------------------------------------------------------------------------------------
# the command line, as a user runs it


def cli_env(tmp_path, names=None, buffered=True, **extra):
    """A clean environment: no download (port 9 is closed), the cache in tmp_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MICROGPT_")}
    env.pop("PYTHONUNBUFFERED", None)
    if not buffered:
        env["PYTHONUNBUFFERED"] = "1"
    env.update(
        PYTHONPATH=str(ROOT),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        MICROGPT_DATA_URL="http://127.0.0.1:9/names.txt",
    )
    if names is not None:
        env["MICROGPT_DATA"] = str(names)
    env.update(extra)
    return env


def run_cli(args, cwd=None, env=None, timeout=120, python=sys.executable, **kwargs):
    """`python -m microgpt ARGS` in a fresh process, this checkout's package first on
    its path, with no standard input: the finished process, output as text."""
    env = dict(os.environ if env is None else env, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [python, "-m", "microgpt", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        **kwargs,
    )


def record(what, code, err):
    """One row of the table of hostile inputs: HOSTILE_TABLE=path appends (input, exit
    code, first line of stderr) to that file, the table of the closing note."""
    table = os.environ.get("HOSTILE_TABLE")
    if table:
        first = (str(err).strip().splitlines() or [""])[0]
        with open(table, "a", encoding="utf-8") as f:
            f.write(f"{single_line(what)}\t{code}\t{first}\n")


def assert_one_line(result, code, *fragments, what=None):
    """Exit `code`, stderr exactly one line holding every fragment, no traceback."""
    record(what or " ".join(result.args[3:]), result.returncode, result.stderr)
    err = result.stderr
    assert result.returncode == code, (result.returncode, err)
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err


# ---------------------------------------------------------------------------------------
# the stages, and their small model: microgpt's shape on a few names with every letter


def load_or_skip(name):
    """The module of stage `name`; the test is skipped when an optional package is not
    installed, or the module is missing (which test_every_stage_has_a_module reports)."""
    why_not = stages.why_not_runnable(stages.BY_NAME[name])
    if why_not:
        pytest.skip(f"stage {name} {why_not}")
    return stages.load(name)


# every letter of the alphabet, so the vocabulary is microgpt's 27 and the model has 4192 params
DOCS = ["emma", "olivia", "quinn", "jax", "zoe", "brooklyn", "hunter", "wyatt", "gavin", "derek"]
DOCS += ["xavier", "fiona", "ulysses", "penelope", "victor", "ruth", "mackenzie", "isabella"]
CFG = GPTConfig()


def setup(seed=42):
    """(tokenizer, weights) of DOCS, the weights drawn from `seed` as microgpt draws them."""
    tok = Tokenizer.from_docs(DOCS)
    return tok, init_weights(CFG, tok.vocab_size, random.Random(seed))


def flat_list(weights, vocab_size):
    """Every weight as one list, matrix after matrix, row-major: the flat stages' order."""
    return [v for name, _, _ in param_shapes(CFG, vocab_size) for row in weights[name] for v in row]


def baseline_grads(weights, vocab_size, tokens):
    """Loss and flat gradients from the baseline's scalar autograd, and its model."""
    model = GPT(CFG, vocab_size, weights)
    loss = model.loss(tokens)
    loss.backward()
    return loss.data, [p.grad for p in model.params], model


def assert_close(got, expected, tol=1e-12):
    worst = max(abs(a - b) for a, b in zip(got, expected, strict=True))
    assert worst <= tol, f"max abs difference {worst:.3g} > {tol:g}"


def central_difference(f, xs, i, h=1e-6):
    """The slope of `f` (a function of a list of floats) along xs[i], by central difference."""
    up, down = list(xs), list(xs)
    up[i] += h
    down[i] -= h
    return (f(up) - f(down)) / (2 * h)
