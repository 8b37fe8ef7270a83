"""The stage `flat`: it runs without numpy, and its products by `math.sumprod` (Python
3.12+, the browser's) equal its 3.11 kernels to rounding; where there is no
`math.sumprod`, a stand-in checks them (its gradients: tests/stages/test_every_stage.py)."""

import random
import subprocess
import sys
from operator import mul

import pytest
from helpers import CFG, assert_close, setup

from microgpt.model import GPT
from microgpt.stages import _list_kernels, flat

E = 16


def vector(rng, n):
    return [rng.gauss(0, 1) for _ in range(n)]


@pytest.fixture(params=["math.sumprod", "stand-in"])
def kernels(request, monkeypatch):
    """The kernels' module, with the `sumprod` Python 3.12+ has, or a stand-in on 3.11."""
    if request.param == "stand-in":
        monkeypatch.setattr(_list_kernels, "sumprod", lambda p, q: sum(map(mul, p, q)))
    elif _list_kernels.sumprod is None:
        pytest.skip("math.sumprod needs Python 3.12+")
    return _list_kernels


def test_matvec_matches_flat(kernels):
    rng = random.Random(1)
    w, x = vector(rng, 3 * E * E), vector(rng, E)
    assert_close(kernels.matvec_sumprod(w, x, 3 * E), flat.matvec(w, x, 3 * E), 1e-13)


@pytest.mark.parametrize("n", [1, 2, 7, 16])
def test_outer_sum_matches_flat(kernels, n):
    rng = random.Random(n)
    pairs = [(vector(rng, 3 * E), vector(rng, E)) for _ in range(n)]
    assert_close(kernels.outer_sum_sumprod(pairs, 3 * E, E), flat.outer_sum(pairs, 3 * E, E), 1e-13)


def test_rows_from_pairs_matches_flat(kernels):
    rng = random.Random(3)
    # rows with no pair (inactive unit), one pair, several pairs
    rows = [[(rng.gauss(0, 1), vector(rng, E)) for _ in range(k)] for k in (0, 1, 2, 5, 0, 9)]
    assert_close(kernels.rows_from_pairs_sumprod(rows, E), flat.rows_from_pairs(rows, E), 1e-13)


def test_model_uses_the_sumprod_kernels_where_python_has_them():
    model = flat.Model
    uses = model.matvec is flat.matvec_sumprod
    assert uses == (flat.sumprod is not None)
    assert (model.outer_sum is flat.outer_sum_sumprod) == uses
    assert (model.rows_from_pairs is flat.rows_from_pairs_sumprod) == uses


def test_a_model_on_the_sumprod_kernels_trains_as_the_baseline(kernels, monkeypatch):
    """The browser's `flat`: every product by `sumprod`, five steps against the baseline."""
    for name in ("matvec", "outer_sum", "rows_from_pairs"):
        monkeypatch.setattr(flat.Model, name, staticmethod(getattr(flat, f"{name}_sumprod")))
    tok, weights = setup()
    model, baseline = flat.Model(CFG, tok.vocab_size, weights), GPT(CFG, tok.vocab_size, weights)
    for step, name in enumerate(["emma", "olivia", "mackenzie", "zoe", "isabella"]):
        tokens = tok.encode(name)
        assert (
            abs(model.train_step(tokens, step, 10) - baseline.train_step(tokens, step, 10)) < 1e-12
        )


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
