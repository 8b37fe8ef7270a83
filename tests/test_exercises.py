"""The exercise checkers of chapters 00-05: each accepts a right answer and rejects the
usual wrong ones with a message that names the mistake."""

import inspect
import math
import sys

from microgpt.book import exercises as ex
from microgpt.config import AdamConfig
from microgpt.engine import Value
from microgpt.model import rmsnorm as value_rmsnorm
from microgpt.model import softmax as value_softmax


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
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(5_000)  # as PyTorch's compiler leaves it (2,000), and more
    try:
        assert "explicit stack" in repr(ex.check_count_nodes(recursive))
    finally:
        sys.setrecursionlimit(before)
    assert sys.getrecursionlimit() == before


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


# ----------------------------------------------------------------------------
def test_check_constant_lr():
    from microgpt import Run, stages

    def train(docs, num_steps, adam):
        run = Run(docs, stages.load("flat"), seed=42, adam=adam)
        return [loss for _, loss in run.train(num_steps)]

    assert ex.check_constant_lr(lambda docs, n: train(docs, n, AdamConfig(decay=False)))
    decaying = ex.check_constant_lr(lambda docs, n: train(docs, n, AdamConfig()))
    assert "decay=False" in repr(decaying) and not decaying
    faster = AdamConfig(lr=0.02, decay=False)
    other_lr = ex.check_constant_lr(lambda docs, n: train(docs, n, faster))
    assert "step 2" in repr(other_lr)


def test_constant_lr_is_lr_at_every_step_and_the_default_decays():
    assert [AdamConfig(decay=False).lr_at(s, 10) for s in (0, 5, 9)] == [0.01] * 3
    assert AdamConfig().lr_at(5, 10) == 0.01 * (1 - 5 / 10)


# the messages the notebooks store, and the checker idiom itself


def test_unwritten_messages_are_the_ones_the_notebooks_store():
    def num_params(cfg, vocab_size):
        raise NotImplementedError

    def count_nodes(root):
        raise NotImplementedError

    assert repr(ex.check_num_params(num_params)) == (
        "✗ num_params is not written yet: fill in its body, rerun"
    )
    assert repr(ex.check_count_nodes(count_nodes)) == (
        "✗ count_nodes is not written yet: fill in its body, rerun"
    )


def test_a_reader_exception_names_the_call():
    def encode(doc, chars):
        return [chars[doc]]

    assert repr(ex.check_encode(encode)) == (
        "✗ encode('emma', ['a', 'b', 'c', 'd', 'e', 'f', ...]) raised TypeError: "
        "list indices must be integers or slices, not str"
    )


def test_overflow_and_zero_division_get_their_own_hint():
    def naive(logits):
        exps = [math.exp(x) for x in logits]
        return [e / sum(exps) for e in exps]

    def no_eps(x):
        scale = (sum(xi * xi for xi in x) / len(x)) ** -0.5
        return [xi * scale for xi in x]

    assert repr(ex.check_softmax(naive)) == (
        "✗ softmax overflows on logits near 1000: subtract max(logits) before exp()"
    )
    assert repr(ex.check_rmsnorm(no_eps)) == (
        "✗ rmsnorm of zeros failed (no_eps([0.0, 0.0, 0.0]) raised ZeroDivisionError: "
        "0.0 cannot be raised to a negative power): add 1e-5 to ms"
    )


def test_success_messages():
    def right_encode(doc, chars):
        return [len(chars)] + [chars.index(c) for c in doc] + [len(chars)]

    assert repr(ex.check_encode(right_encode)) == (
        "✓ encode: ids are indices into chars, with BOS at both ends"
    )


def test_checkers_keep_their_names_and_parameters():
    assert ex.check_softmax.__name__ == "check_softmax"
    assert list(inspect.signature(ex.check_adam).parameters) == ["adam_update"]


def test_wrong_becomes_a_failed_check_and_the_message_a_passed_one():
    @ex.checker
    def check_positive(fn):
        if ex.call(fn, 1) <= 0:
            raise ex.Wrong("not positive")
        return "positive"

    assert check_positive(lambda x: x) and repr(check_positive(lambda x: x)) == "✓ positive"
    assert not check_positive(lambda x: -x) and repr(check_positive(lambda x: -x)) == (
        "✗ not positive"
    )
