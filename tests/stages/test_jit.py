"""The compiled stage `jit`: a name longer than the block, its on-disk cache, and its
absence where numba is missing (its gradients: tests/stages/test_every_stage.py)."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from helpers import CFG, ROOT, assert_close, baseline_grads, load_or_skip, setup

from microgpt import stages
from microgpt.config import GPTConfig
from microgpt.train import Run

needs_numba = pytest.mark.skipif(
    bool(stages.missing_requirements(stages.BY_NAME["jit"])),
    reason="stage jit needs numba (pip install numba)",
)


@pytest.fixture(scope="module")
def jit():
    return load_or_skip("jit")


# ---------------------------------------------------------------------------
# gradients


def test_a_name_longer_than_the_block_matches_baseline_autograd(jit):
    tok, weights = setup()
    tokens = tok.encode("mackenzieisabella")  # 18 tokens: training stops at position 16
    model = jit.Model(CFG, tok.vocab_size, weights)
    loss = model.loss_and_grad([tokens])
    base_loss, base_grad, _ = baseline_grads(weights, tok.vocab_size, tokens)
    assert loss == pytest.approx(base_loss, abs=1e-13)
    assert_close(model.grads.tolist(), base_grad)


@pytest.mark.parametrize(
    "cfg",
    [GPTConfig(), GPTConfig(n_layer=2, n_embd=8, n_head=2, block_size=6)],
    ids=["default", "2x8x2-block6"],
)
@pytest.mark.parametrize("batch_size", [3, 32])
def test_batches_equal_tensors(names_docs, jit, cfg, batch_size):
    """The one batched algorithm: B names per step, the mean over every real token
    (`tensor` pads and masks; jit loops over each name's own positions)."""
    runs = [Run(names_docs, stage, cfg=cfg) for stage in (load_or_skip("tensor"), jit)]
    expected, got = ([loss for _, loss in run.train(30, batch_size)] for run in runs)
    assert max(abs(a - b) for a, b in zip(got, expected)) <= 1e-12
    assert runs[1].sample(5) == runs[0].sample(5)


# ---------------------------------------------------------------------------
# the compiled code's cache, and where there is none

# trains two steps and samples a name; prints the cache statistics of the entry points
TINY_RUN = """
import json
from microgpt.stages import jit
from microgpt.train import losses_and_samples
losses, names = losses_and_samples(["emma", "olivia", "ava", "mia"], jit, 2, num_samples=1)
stats = {f.__name__: f.stats for f in (jit.train_name, jit.next_probs)}
print(json.dumps({
    "losses": losses,
    "names": names,
    "hits": {name: sum(s.cache_hits.values()) for name, s in stats.items()},
    "misses": {name: sum(s.cache_misses.values()) for name, s in stats.items()},
    "cache_paths": sorted({str(s.cache_path) for s in stats.values()}),
}))
"""


def tiny_run(env, cwd=None):
    """(result of TINY_RUN, its stderr) in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-c", TINY_RUN], capture_output=True, text=True, env=env, cwd=cwd
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


def clean_env(**changes):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env.update(changes)
    return env


@pytest.mark.slow  # two fresh processes compile: half a minute
@needs_numba
def test_second_process_loads_the_compiled_code_from_the_cache(tmp_path):
    env = clean_env(NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    first, first_err = tiny_run(env)
    assert set(first["misses"].values()) == {1} and set(first["hits"].values()) == {0}
    assert list((tmp_path / "numba").rglob("jit.train_name-*.nbi"))  # the cache's index
    second, second_err = tiny_run(env)
    assert set(second["hits"].values()) == {1}, second
    assert set(second["misses"].values()) == {0}, second  # nothing compiled again
    assert (second["losses"], second["names"]) == (first["losses"], first["names"])
    assert first_err == second_err == ""


@pytest.mark.slow  # a fresh process compiles: half a minute
@needs_numba
def test_no_writable_cache_folder_compiles_quietly(tmp_path):
    """A read-only install with no cache folder: numba has nowhere to write, so it
    compiles in every process; the stage must neither fail nor print anything."""
    copy = tmp_path / "install"
    shutil.copytree(ROOT / "microgpt", copy / "microgpt", ignore=shutil.ignore_patterns("*.pyc"))
    shutil.rmtree(copy / "microgpt" / "stages" / "__pycache__", ignore_errors=True)
    (copy / "microgpt" / "stages" / "__pycache__").write_text("")  # a file: no folder here
    not_a_folder = tmp_path / "not-a-folder"
    not_a_folder.write_text("")
    env = clean_env(
        PYTHONPATH=str(copy), HOME=str(not_a_folder), XDG_CACHE_HOME=str(not_a_folder / "cache")
    )
    result, err = tiny_run(env, cwd=copy)
    assert err == ""
    assert result["cache_paths"] == ["None"]  # numba's statistics of an uncached function
    assert len(result["losses"]) == 2 and len(result["names"]) == 1


def test_without_numba_the_cli_says_what_to_install(tmp_path):
    (tmp_path / "names.txt").write_text("emma\nolivia\n")
    code = (
        "import sys\n"
        "sys.modules['numba'] = None  # as where numba is not installed (Pyodide)\n"
        "from microgpt.tools.cli import run\n"
        "sys.argv = ['microgpt', '--stage', 'jit', '--steps', '1', '--data', 'names.txt']\n"
        "run()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert "stage 'jit' needs numba" in done.stderr
    assert "install it with: pip install numba" in done.stderr
