"""The notebook helpers and the exercise checkers: each checker accepts a right
answer and rejects the usual wrong ones with a message that names the mistake."""

import io
import math
import random
import re

from microgpt import exercises as ex
from microgpt.config import GPTConfig
from microgpt.engine import Value
from microgpt.model import init_weights
from microgpt.model import rmsnorm as value_rmsnorm
from microgpt.model import softmax as value_softmax
from microgpt.notebook import attention_weights, cmp, flatten, progress, show_source, train_live

# ----------------------------------------------------------------------------
# cmp, show_source, progress


def test_cmp_exact_approximate_and_different(capsys):
    assert cmp("same", [1.0, 2.0], [1.0, 2.0])
    assert "exact: True" in capsys.readouterr().out
    assert cmp("close", [1.0, 2.0], [1.0, 2.0 + 1e-12])
    out = capsys.readouterr().out
    assert "exact: False" in out and "approximate: True" in out
    assert not cmp("far", [[1.0], [2.0]], [[1.0], [2.5]])
    assert "maxdiff: 5.0e-01" in capsys.readouterr().out
    assert not cmp("size", [1.0], [1.0, 2.0])
    assert "size differs" in capsys.readouterr().out


def test_flatten_reads_values_dicts_and_nesting():
    assert flatten({"b": [Value(2.0)], "a": ([1, 3],)}) == [1.0, 3.0, 2.0]


def test_show_source_prints_plain_source_outside_a_notebook(capsys):
    show_source(flatten)
    assert capsys.readouterr().out.startswith("def flatten(x):")


def carriage_returns_resolved(text):
    """What a notebook keeps of a stream: text before a "\\r" on its line is dropped."""
    return re.sub(r".*\r(?=[^\n])", "", text)


def test_progress_yields_everything_and_ends_deterministically(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    items = list(progress(range(7), label="work", status=lambda i: f"item {i}", every=0.0))
    assert items == list(range(7))
    assert carriage_returns_resolved(out.getvalue()) == ("work [" + "#" * 30 + "] 7/7 item 6\n")


class FakeRun:
    def train(self, num_steps):
        return ((step, 3.0 - step / 10) for step in range(num_steps))


def test_train_live_logs_every_n_steps_and_returns_losses(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    losses = train_live(FakeRun(), 5, log_every=2)
    assert losses == [3.0, 2.9, 2.8, 2.7, 2.6]
    lines = carriage_returns_resolved(out.getvalue()).splitlines()
    assert lines[:3] == [
        "step    2 /    5 | loss 2.9000",
        "step    4 /    5 | loss 2.7000",
        "step    5 /    5 | loss 2.6000",
    ]
    assert lines[3].startswith("train [") and lines[3].endswith("5/5 loss 2.6000")


# ----------------------------------------------------------------------------
# exercise checkers: right answers pass, wrong ones fail with the right hint


def not_written(*args):
    raise NotImplementedError


def test_checkers_say_when_the_function_is_not_written():
    check = ex.check_softmax(not_written)
    assert not check and "not written yet" in repr(check)


def test_check_encode():
    def right(doc, chars):
        return [len(chars)] + [chars.index(c) for c in doc] + [len(chars)]

    def no_bos(doc, chars):
        return [chars.index(c) for c in doc]

    def one_based(doc, chars):
        return [len(chars)] + [chars.index(c) + 1 for c in doc] + [len(chars)]

    assert ex.check_encode(right)
    assert "BOS" in repr(ex.check_encode(no_bos))
    assert not ex.check_encode(one_based)


def test_check_softmax():
    def naive(logits):
        exps = [math.exp(x) for x in logits]
        return [e / sum(exps) for e in exps]

    def unnormalised(logits):
        return [math.exp(x - max(logits)) for x in logits]

    assert ex.check_softmax(lambda xs: [p.data for p in value_softmax([Value(x) for x in xs])])
    assert "subtract max" in repr(ex.check_softmax(naive))
    assert "sums to" in repr(ex.check_softmax(unnormalised))


def test_check_tanh():
    def right(x):
        t = math.tanh(x.data)
        return Value(t, (x,), (1 - t**2,))

    def no_children(x):
        return Value(math.tanh(x.data))

    def wrong_local_grad(x):
        t = math.tanh(x.data)
        return Value(t, (x,), (1 - t,))

    def from_exp(x):
        e = (2 * x).exp()
        return (e - 1) / (e + 1)

    assert ex.check_tanh(right)
    assert ex.check_tanh(from_exp)
    assert "stayed 0" in repr(ex.check_tanh(no_children))
    assert "local gradient" in repr(ex.check_tanh(wrong_local_grad))
    assert "return a Value" in repr(ex.check_tanh(lambda x: math.tanh(x.data)))


def test_check_rmsnorm():
    def no_eps(x):
        scale = (sum(xi * xi for xi in x) / len(x)) ** -0.5
        return [xi * scale for xi in x]

    def layernorm(x):
        mean = sum(x) / len(x)
        x = [xi - mean for xi in x]
        scale = (sum(xi * xi for xi in x) / len(x) + 1e-5) ** -0.5
        return [xi * scale for xi in x]

    assert ex.check_rmsnorm(lambda xs: value_rmsnorm([Value(x) for x in xs]))
    assert "1e-5" in repr(ex.check_rmsnorm(no_eps))
    assert "mean" in repr(ex.check_rmsnorm(layernorm))


def test_check_adam():
    def right(data, grad, m, v, step, num_steps, cfg):
        m = cfg.beta1 * m + (1 - cfg.beta1) * grad
        v = cfg.beta2 * v + (1 - cfg.beta2) * grad**2
        m_hat = m / (1 - cfg.beta1 ** (step + 1))
        v_hat = v / (1 - cfg.beta2 ** (step + 1))
        lr_t = cfg.lr * (1 - step / num_steps)
        return data - lr_t * m_hat / (v_hat**0.5 + cfg.eps), m, v

    def no_bias_correction(data, grad, m, v, step, num_steps, cfg):
        m = cfg.beta1 * m + (1 - cfg.beta1) * grad
        v = cfg.beta2 * v + (1 - cfg.beta2) * grad**2
        lr_t = cfg.lr * (1 - step / num_steps)
        return data - lr_t * m / (v**0.5 + cfg.eps), m, v

    def no_decay(data, grad, m, v, step, num_steps, cfg):
        return right(data, grad, m, v, step, 10**9, cfg)

    assert ex.check_adam(right)
    assert "1 - beta" in repr(ex.check_adam(no_bias_correction))
    assert "decays" in repr(ex.check_adam(no_decay))


def test_check_count_nodes():
    def iterative(root):
        seen, stack = set(), [root]
        while stack:
            node = stack.pop()
            if node not in seen:
                seen.add(node)
                stack.extend(node._children)
        return len(seen)

    def counts_paths(root):
        count, stack = 0, [root]
        while stack:
            node = stack.pop()
            count += 1
            stack.extend(node._children)
        return count

    def recursive(root, seen=None):
        seen = set() if seen is None else seen
        seen.add(root)
        for child in root._children:
            if child not in seen:
                recursive(child, seen)
        return len(seen)

    assert ex.check_count_nodes(iterative)
    assert "once" in repr(ex.check_count_nodes(counts_paths))
    assert "explicit stack" in repr(ex.check_count_nodes(recursive))


def test_check_num_params():
    def right(cfg, vocab_size):
        embeddings = (2 * vocab_size + cfg.block_size) * cfg.n_embd
        return embeddings + 12 * cfg.n_layer * cfg.n_embd**2

    def one_layer_only(cfg, vocab_size):
        return (2 * vocab_size + cfg.block_size) * cfg.n_embd + 12 * cfg.n_embd**2

    def layers_only(cfg, vocab_size):
        return 12 * cfg.n_layer * cfg.n_embd**2

    assert ex.check_num_params(right)
    assert not ex.check_num_params(one_layer_only)
    assert "wte, wpe and lm_head are missing" in repr(ex.check_num_params(layers_only))


def test_attention_weights_are_distributions_over_earlier_positions():
    cfg = GPTConfig()
    weights = init_weights(cfg, 27, random.Random(0))
    att = attention_weights(cfg, weights, [26, 4, 12, 12, 0])
    assert len(att) == cfg.n_layer and len(att[0]) == cfg.n_head
    for pos, row in enumerate(att[0][2]):
        assert len(row) == pos + 1 and math.isclose(sum(row), 1.0)
