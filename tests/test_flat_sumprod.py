"""`flat`'s products by `math.sumprod` (Python 3.12+, the browser's) equal its 3.11
kernels to rounding; where there is no `math.sumprod`, a stand-in checks them."""

import random
from operator import mul

import pytest
from test_graphfree_stages import CFG, setup

from microgpt.model import GPT
from microgpt.stages import flat

E = 16


def vector(rng, n):
    return [rng.gauss(0, 1) for _ in range(n)]


def assert_close(got, expected):
    assert len(got) == len(expected)
    assert max(abs(a - b) for a, b in zip(got, expected)) < 1e-13


@pytest.fixture(params=["math.sumprod", "stand-in"])
def kernels(request, monkeypatch):
    """flat's module, with the `sumprod` Python 3.12+ has, or a stand-in on 3.11."""
    if request.param == "stand-in":
        monkeypatch.setattr(flat, "sumprod", lambda p, q: sum(map(mul, p, q)))
    elif flat.sumprod is None:
        pytest.skip("math.sumprod needs Python 3.12+")
    return flat


def test_matvec_matches_flat(kernels):
    rng = random.Random(1)
    w, x = vector(rng, 3 * E * E), vector(rng, E)
    assert_close(kernels.matvec_sumprod(w, x, 3 * E), flat.matvec(w, x, 3 * E))


@pytest.mark.parametrize("n", [1, 2, 7, 16])
def test_outer_sum_matches_flat(kernels, n):
    rng = random.Random(n)
    pairs = [(vector(rng, 3 * E), vector(rng, E)) for _ in range(n)]
    assert_close(kernels.outer_sum_sumprod(pairs, 3 * E, E), flat.outer_sum(pairs, 3 * E, E))


def test_rows_from_pairs_matches_flat(kernels):
    rng = random.Random(3)
    # rows with no pair (inactive unit), one pair, several pairs
    rows = [[(rng.gauss(0, 1), vector(rng, E)) for _ in range(k)] for k in (0, 1, 2, 5, 0, 9)]
    assert_close(kernels.rows_from_pairs_sumprod(rows, E), flat.rows_from_pairs(rows, E))


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
