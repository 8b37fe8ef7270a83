"""The exercise checkers of chapters 06-16 accept right answers and name what is wrong."""

import contextlib
import gc
import json
import math
import re
from pathlib import Path

from microgpt import numeric
from microgpt.book.exercises_passes import (
    check_batch_loss,
    check_cross_entropy,
    check_dot_backward,
    check_float_softmax,
    check_gc_paused,
    check_held_out_split,
    check_linear_backward,
    check_mul_op,
    check_rmsnorm_backward,
    check_softmax_backward_kernel,
    check_speedups,
    check_topological_order,
)
from microgpt.engine import Value, topological_order
from microgpt.evaluate import split
from microgpt.stages import graph, tape

BOOK = Path(__file__).resolve().parent.parent / "book"


def fails(check, fn, words):
    result = check(fn)
    assert not result
    assert re.search(words, repr(result)), repr(result)


def passes(check, fn):
    result = check(fn)
    assert result, repr(result)
    assert repr(result).startswith("✓")


# --- softmax on floats -------------------------------------------------------------------


def test_float_softmax_accepts_the_package_version():
    passes(check_float_softmax, numeric.softmax)


def test_float_softmax_without_the_max_shift_overflows():
    def naive(logits):
        exps = [math.exp(x) for x in logits]
        return [e / sum(exps) for e in exps]

    fails(check_float_softmax, naive, "OverflowError")


def test_float_softmax_that_returns_values_is_rejected():
    def on_values(logits):
        out = numeric.softmax(logits)
        return [Value(p) for p in out]

    fails(check_float_softmax, on_values, "plain floats")


def test_float_softmax_that_mutates_its_input_is_rejected():
    def in_place(logits):
        probs = numeric.softmax(logits)
        logits[:] = probs
        return logits

    fails(check_float_softmax, in_place, "changed its input")


def test_unwritten_exercise_says_so():
    def todo(logits):
        raise NotImplementedError

    fails(check_float_softmax, todo, "not written yet")


# --- topological order -------------------------------------------------------------------


def test_topological_order_accepts_the_visited_set_version():
    passes(check_topological_order, topological_order)


def test_topological_order_accepts_the_mark_based_version():
    passes(check_topological_order, lambda root: graph.topological_order([root]))


def test_recursive_topological_order_hits_the_recursion_limit():
    def recursive(root):
        topo, visited = [], set()

        def build(v):
            if v not in visited:
                visited.add(v)
                for child in v._children:
                    build(child)
                topo.append(v)

        build(root)
        return topo

    fails(check_topological_order, recursive, "recursion limit")


def test_topological_order_without_marks_repeats_nodes():
    def no_marks(root):
        topo, stack = [], [(root, False)]
        while stack:
            node, done = stack.pop()
            if done:
                topo.append(node)
            else:
                stack.append((node, True))
                stack.extend((c, False) for c in node._children)
        return topo

    fails(check_topological_order, no_marks, "more than once")


def test_topological_order_with_a_fixed_mark_fails_the_second_time():
    # a mark above any epoch the process has used so far: the first walk works, the second not
    def fixed_epoch(root, entered=10**9):
        topo, stack = [], [root]
        while stack:
            node = stack.pop()
            if node._mark < entered:
                node._mark = entered
                stack.append(node)
                stack.extend(c for c in node._children if c._children and c._mark < entered)
            elif node._mark == entered:
                node._mark = entered + 1
                topo.append(node)
        return topo

    fails(check_topological_order, fixed_epoch, "second time.*missing")


def test_parents_before_children_is_rejected():
    fails(check_topological_order, lambda root: topological_order(root)[::-1], "before its child")


# --- cross-entropy -----------------------------------------------------------------------


def softmax_ce(logits, target):
    probs = numeric.softmax(logits)
    return -math.log(probs[target]), [p - (i == target) for i, p in enumerate(probs)]


def test_cross_entropy_accepts_probs_minus_onehot():
    passes(check_cross_entropy, softmax_ce)


def test_cross_entropy_without_the_onehot_is_named():
    def no_onehot(logits, target):
        loss, _ = softmax_ce(logits, target)
        return loss, numeric.softmax(logits)

    fails(check_cross_entropy, no_onehot, "probs - onehot")


def test_cross_entropy_with_a_wrong_loss_is_rejected():
    def positive_log(logits, target):
        loss, grad = softmax_ce(logits, target)
        return -loss, grad

    fails(check_cross_entropy, positive_log, "for target 1, expected")


# --- dot backward ------------------------------------------------------------------------


def test_dot_backward_accepts_the_right_gradients():
    def right(w, x, g):
        return [xi * g for xi in x], [wi * g for wi in w]

    passes(check_dot_backward, right)


def test_dot_backward_swapped_gradients_are_named():
    def swapped(w, x, g):
        return [wi * g for wi in w], [xi * g for xi in x]

    fails(check_dot_backward, swapped, "swapped")


def test_dot_backward_forgetting_grad_out_is_rejected():
    def no_chain_rule(w, x, g):
        return list(x), list(w)

    fails(check_dot_backward, no_chain_rule, "off by")


# --- rmsnorm backward --------------------------------------------------------------------


def right_rmsnorm_backward(x, g):
    n = len(x)
    s = (sum(xi * xi for xi in x) / n + 1e-5) ** -0.5
    dot = sum(gi * xi for gi, xi in zip(g, x))
    return [s * gi - s**3 * xi * dot / n for gi, xi in zip(g, x)]


def test_rmsnorm_backward_accepts_the_analytic_gradient():
    passes(check_rmsnorm_backward, right_rmsnorm_backward)


def test_rmsnorm_backward_with_a_constant_scale_is_named():
    def constant_scale(x, g):
        s = (sum(xi * xi for xi in x) / len(x) + 1e-5) ** -0.5
        return [s * gi for gi in g]

    fails(check_rmsnorm_backward, constant_scale, "constant")


def test_rmsnorm_backward_off_by_a_factor_is_rejected():
    def missing_mean(x, g):
        s = (sum(xi * xi for xi in x) / len(x) + 1e-5) ** -0.5
        dot = sum(gi * xi for gi, xi in zip(g, x))
        return [s * gi - s**3 * xi * dot for gi, xi in zip(g, x)]

    fails(check_rmsnorm_backward, missing_mean, "off by")


# --- gc pause ----------------------------------------------------------------------------


@contextlib.contextmanager
def right_pause():
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def test_gc_pause_accepts_a_restoring_context_manager():
    enabled = gc.isenabled()
    passes(check_gc_paused, right_pause)
    assert gc.isenabled() == enabled


def test_gc_pause_that_always_enables_is_named():
    @contextlib.contextmanager
    def always_enable():
        gc.disable()
        try:
            yield
        finally:
            gc.enable()

    fails(check_gc_paused, always_enable, "disabled before the block")


def test_gc_pause_without_finally_is_named():
    @contextlib.contextmanager
    def no_finally():
        was_enabled = gc.isenabled()
        gc.disable()
        yield
        if was_enabled:
            gc.enable()

    fails(check_gc_paused, no_finally, "finally")
    assert gc.isenabled()  # the checker restores the collector even when the answer is wrong


def test_gc_pause_that_is_not_a_context_manager_is_named():
    fails(check_gc_paused, lambda: None, "context manager")


def test_gc_pause_unwritten_generator_says_so():
    @contextlib.contextmanager
    def todo():
        raise NotImplementedError
        yield

    fails(check_gc_paused, todo, "not written yet")
    assert gc.isenabled()


def test_gc_pause_that_swallows_exceptions_is_named():
    class Swallowing:
        def __enter__(self):
            self.was = gc.isenabled()
            gc.disable()

        def __exit__(self, *exc):
            if self.was:
                gc.enable()
            return True

    fails(check_gc_paused, Swallowing, "swallowed")


# --- flat linear backward ----------------------------------------------------------------


def right_linear_backward(x, w, rows, cols, g):
    grad_x = [sum(w[r * cols + c] * g[r] for r in range(rows)) for c in range(cols)]
    grad_w = [g[r] * x[c] for r in range(rows) for c in range(cols)]
    return grad_x, grad_w


def test_linear_backward_accepts_the_right_gradients():
    passes(check_linear_backward, right_linear_backward)


def test_linear_backward_with_transposed_indexing_is_rejected():
    def transposed(x, w, rows, cols, g):
        grad_x = [sum(w[c * rows + r] * g[r] for r in range(rows)) for c in range(cols)]
        return grad_x, [g[r] * x[c] for r in range(rows) for c in range(cols)]

    fails(check_linear_backward, transposed, "grad_x")


def test_linear_backward_with_column_major_grad_w_is_rejected():
    def column_major(x, w, rows, cols, g):
        grad_x, _ = right_linear_backward(x, w, rows, cols, g)
        return grad_x, [g[r] * x[c] for c in range(cols) for r in range(rows)]

    fails(check_linear_backward, column_major, "grad_w")


# --- softmax backward kernel -------------------------------------------------------------


def right_softmax_backward(w, dw, out):
    dot = 0.0
    for i in range(len(w)):
        dot += w[i] * dw[i]
    for i in range(len(w)):
        out[i] = w[i] * (dw[i] - dot)


def test_softmax_backward_kernel_accepts_the_in_place_loop():
    passes(check_softmax_backward_kernel, right_softmax_backward)


def test_softmax_backward_kernel_that_returns_a_list_is_named():
    def returning(w, dw, out):
        dot = sum(a * b for a, b in zip(w, dw))
        return [a * (b - dot) for a, b in zip(w, dw)]

    fails(check_softmax_backward_kernel, returning, "into `out`")


def test_softmax_backward_kernel_without_the_dot_is_named():
    def no_dot(w, dw, out):
        for i in range(len(w)):
            out[i] = w[i] * dw[i]

    fails(check_softmax_backward_kernel, no_dot, "subtract")


# --- speed-ups ---------------------------------------------------------------------------


def right_speedups(ms):
    names = list(ms)
    return {
        name: (ms[names[0]] / ms[name], None if i == 0 else ms[names[i - 1]] / ms[name])
        for i, name in enumerate(names)
    }


def test_speedups_accepts_old_over_new():
    passes(check_speedups, right_speedups)


def test_speedups_upside_down_is_named():
    def inverted(ms):
        return {
            name: (1 / a, None if b is None else 1 / b)
            for name, (a, b) in right_speedups(ms).items()
        }

    fails(check_speedups, inverted, "upside down")


def test_speedups_with_baseline_as_previous_is_rejected():
    def vs_baseline_twice(ms):
        return {name: (a, None if b is None else a) for name, (a, b) in right_speedups(ms).items()}

    fails(check_speedups, vs_baseline_twice, "vs_previous")


def test_speedups_written_for_one_set_of_timings_is_rejected():
    first = right_speedups({"baseline": 120.0, "cleanup": 100.0, "fused": 8.0, "flat": 2.0})

    def memorised(ms):
        return first

    fails(check_speedups, memorised, "keys")


def test_speedups_answer_note_passes():
    """The answer the results chapter reveals is accepted."""
    nb = json.loads((BOOK / "15_results.ipynb").read_text("utf-8"))
    notes = ["".join(c["source"]) for c in nb["cells"] if "<details>" in "".join(c["source"])]
    code = notes[0].split("```python\n", 1)[1].split("```", 1)[0]
    namespace = {}
    exec(code, namespace)
    passes(check_speedups, namespace["speedups"])


# --- an op on the tape -------------------------------------------------------------------


class RightMul:
    def __init__(self, a, b):
        self.a, self.b = a, b
        self.out = tape.nodes([ai.data * bi.data for ai, bi in zip(a, b)])

    def propagate(self):
        for ai, bi, y in zip(self.a, self.b, self.out):
            ai.grad += bi.data * y.grad
            bi.grad += ai.data * y.grad


def test_mul_op_accepts_the_right_op():
    passes(check_mul_op, RightMul)


def test_mul_op_setting_instead_of_adding_is_named():
    class Setting(RightMul):
        def propagate(self):
            for ai, bi, y in zip(self.a, self.b, self.out):
                ai.grad = bi.data * y.grad
                bi.grad = ai.data * y.grad

    fails(check_mul_op, Setting, r"add to \.grad")


def test_mul_op_wrong_gradient_and_floats_are_rejected():
    class Swapped(RightMul):
        def propagate(self):
            for ai, bi, y in zip(self.a, self.b, self.out):
                ai.grad += ai.data * y.grad
                bi.grad += bi.data * y.grad

    class Floats(RightMul):
        def __init__(self, a, b):
            super().__init__(a, b)
            self.out = [y.data for y in self.out]

    fails(check_mul_op, Swapped, "off by")
    fails(check_mul_op, Floats, "tape.Nodes")


def test_mul_op_not_written_yet_says_so():
    class Todo:
        def __init__(self, a, b):
            raise NotImplementedError

    class HalfDone(RightMul):
        def propagate(self):
            raise NotImplementedError

    fails(check_mul_op, Todo, "not written yet")
    fails(check_mul_op, HalfDone, "propagate is not written yet")


# --- chapter 16: a batch's loss and the held-out split -------------------------------------


def test_batch_loss_accepts_the_mean_over_every_token():
    def right(losses, counts):
        return sum(loss * count for loss, count in zip(losses, counts)) / sum(counts)

    passes(check_batch_loss, right)


def test_batch_loss_names_the_mean_of_means_and_the_sum():
    fails(check_batch_loss, lambda losses, counts: sum(losses) / len(losses), "mean of the names")
    fails(
        check_batch_loss,
        lambda losses, counts: sum(x * c for x, c in zip(losses, counts)),
        "divide by how many",
    )
    fails(check_batch_loss, lambda losses, counts: None, "should be a number")
    fails(check_batch_loss, lambda losses, counts: [1.0], "should be a number")


def test_held_out_split_accepts_the_package_split():
    passes(check_held_out_split, split)
    passes(check_held_out_split, lambda docs: list(split(docs)))


def test_held_out_split_names_what_is_wrong():
    fails(check_held_out_split, lambda docs: (docs[100:], docs[:100]), "held out, expected")
    fails(check_held_out_split, lambda docs: (docs[:-1], docs[-1:]), "held out, expected")

    def first_names(docs):
        k = min(1000, len(docs) // 10)
        return docs[k:], docs[:k]

    fails(check_held_out_split, first_names, "hold out the last names")
    fails(check_held_out_split, lambda docs: (3, 4), "two lists")
    fails(check_held_out_split, lambda docs: docs, "return")

    def slices_to_minus_k(docs):  # empty when nothing is held out
        k = min(1000, len(docs) // 10)
        return docs[:-k], docs[-k:]

    fails(check_held_out_split, slices_to_minus_k, "9 names: 9 held out, expected 0")


def test_chapter_16_answers_pass():
    """The answers chapter 16 reveals are accepted."""
    nb = json.loads((BOOK / "16_bigger.ipynb").read_text("utf-8"))
    notes = ["".join(c["source"]) for c in nb["cells"] if "<details>" in "".join(c["source"])]
    namespace = {}
    for note in notes:
        exec(note.split("```python\n", 1)[1].split("```", 1)[0], namespace)
    passes(check_batch_loss, namespace["batch_loss"])
    passes(check_held_out_split, namespace["split"])
