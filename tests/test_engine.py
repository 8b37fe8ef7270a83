"""Every Value op against central finite differences (and PyTorch, when installed)."""

import math

import pytest
from helpers import central_difference

from microgpt.engine import Value

pytestmark = pytest.mark.usefixtures("frozen_gc")  # big graphs of Value nodes: see conftest

# name -> (function of Values, input points); inputs avoid kinks (relu at 0) and log(<=0).
OPS = {
    "add": (lambda a, b: a + b, [(1.5, -2.0)]),
    "radd": (lambda a, b: 3.0 + a, [(1.5, -2.0)]),
    "mul": (lambda a, b: a * b, [(1.5, -2.0)]),
    "rmul": (lambda a, b: 3.0 * a, [(1.5, -2.0)]),
    "pow": (lambda a, b: a**3, [(1.5, -2.0)]),
    "pow_neg_half": (lambda a, b: a**-0.5, [(1.7, 0.0)]),
    "log": (lambda a, b: a.log(), [(1.7, 0.0)]),
    "exp": (lambda a, b: a.exp(), [(0.3, 0.0)]),
    "relu": (lambda a, b: a.relu(), [(0.8, 0.0), (-0.8, 0.0)]),
    "neg": (lambda a, b: -a, [(0.8, 0.0)]),
    "sub": (lambda a, b: a - b, [(1.5, -2.0)]),
    "rsub": (lambda a, b: 3.0 - a, [(1.5, -2.0)]),
    "truediv": (lambda a, b: a / b, [(1.5, -2.0)]),
    "rtruediv": (lambda a, b: 3.0 / a, [(1.5, -2.0)]),
    "composite": (
        lambda a, b: (a * b + b**2).exp() / (a.relu() + 1.0) - (a * a).log(),
        [(0.7, -0.4)],
    ),
}


def numeric_grad(f, x, i):
    """Central difference of f (an op on Values) with respect to argument i."""
    return central_difference(lambda xs: f(*map(Value, xs)).data, x, i)


@pytest.mark.parametrize("name", OPS)
def test_op_matches_finite_differences(name):
    f, points = OPS[name]
    for x in points:
        a, b = Value(x[0]), Value(x[1])
        out = f(a, b)
        out.backward()
        for i, v in enumerate((a, b)):
            expected = numeric_grad(f, x, i)
            assert v.grad == pytest.approx(expected, rel=1e-6, abs=1e-8), (name, x, i)


def test_shared_node_gradients_accumulate():
    a = Value(2.0)
    out = a * a + a  # d/da = 2a + 1
    out.backward()
    assert out.data == 6.0
    assert a.grad == 5.0


def test_deep_chain_backpropagates_without_recursion_error():
    x = Value(1.0)
    y = x
    for _ in range(100_000):
        y = y * 1.0 + 0.0
    y.backward()
    assert x.grad == 1.0


def test_ops_match_torch():
    torch = pytest.importorskip("torch")
    for name, (f, points) in OPS.items():
        for x in points:
            a, b = Value(x[0]), Value(x[1])
            out = f(a, b)
            out.backward()
            ta, tb = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in x)
            tout = f(TorchScalar(ta), TorchScalar(tb)).t
            tout.backward()
            assert out.data == pytest.approx(tout.item(), rel=1e-12), name
            assert a.grad == pytest.approx(ta.grad.item(), rel=1e-12, abs=1e-15), name
            grad_b = tb.grad.item() if tb.grad is not None else 0.0
            assert b.grad == pytest.approx(grad_b, rel=1e-12, abs=1e-15), name


class TorchScalar:
    """A torch tensor with Value's method names (log, exp, relu), so OPS run on both."""

    def __init__(self, t):
        self.t = t

    @staticmethod
    def unwrap(x):
        return x.t if isinstance(x, TorchScalar) else x

    def __add__(self, o):
        return TorchScalar(self.t + self.unwrap(o))

    def __radd__(self, o):
        return TorchScalar(self.unwrap(o) + self.t)

    def __mul__(self, o):
        return TorchScalar(self.t * self.unwrap(o))

    def __rmul__(self, o):
        return TorchScalar(self.unwrap(o) * self.t)

    def __sub__(self, o):
        return TorchScalar(self.t - self.unwrap(o))

    def __rsub__(self, o):
        return TorchScalar(self.unwrap(o) - self.t)

    def __truediv__(self, o):
        return TorchScalar(self.t / self.unwrap(o))

    def __rtruediv__(self, o):
        return TorchScalar(self.unwrap(o) / self.t)

    def __pow__(self, k):
        return TorchScalar(self.t**k)

    def __neg__(self):
        return TorchScalar(-self.t)

    def log(self):
        return TorchScalar(self.t.log())

    def exp(self):
        return TorchScalar(self.t.exp())

    def relu(self):
        return TorchScalar(self.t.relu())


def test_value_repr_and_math_consistency():
    v = Value(2.0)
    assert "2.0" in repr(v)
    assert (v.exp().log()).data == pytest.approx(2.0)
    assert math.isclose((v**0.5).data, math.sqrt(2.0))
