"""Stage `flat`: no graph at all; flat float lists and a hand-written backward.

Every earlier stage still builds `Value` nodes, each a Python object with its own
children and local gradients. Here the parameters are one flat list of floats, each
weight matrix a row-major slice of it. The forward pass keeps what the backward pass
needs (normalised vectors, attention weights, the active ReLU units) and the backward
pass is written out by hand, position by position in reverse, so that the key and
value gradients of a position are complete before they flow into its projections.

Why it is faster: a matrix-vector product is one `map(mul, ...)` over the flat
matrix, grouped into rows by `zip(*[iter(...)] * n)` and summed by `map(sum, ...)`:
the inner loops run in C instead of the interpreter, with no node per number. All
attention heads are computed by the same few calls. Weight gradients are summed over
all positions at the end of the step, once per matrix. ReLU leaves many hidden units
at zero (more as training goes on), so the MLP reads and updates only the columns of
fc2 and rows of fc1 of the active units: skipped terms are exact zeros. Adam runs
over the flat lists with the baseline's formula.

What is left is the per-number cost of the interpreter: the matrix products, the
weight gradients and Adam's update of every parameter (chapter 13 profiles them).

Results agree with the baseline to rounding, not bit for bit: gradients are summed
in another order, and Python 3.12+ compensates `sum()` of floats and adds the terms
of `math.sumprod` in extended precision.
"""

import math
from itertools import chain
from operator import add, mul

from ..config import AdamConfig
from ..numeric import left_sum, softmax
from ..optim import adam_on_floats
from ._graph_free import GraphFreeModel
from ._list_kernels import (
    column_sums,
    dot_groups,
    matvec,
    matvec_sumprod,
    outer_sum,
    outer_sum_sumprod,
    repeat_each,
    rmsnorm,
    rmsnorm_backward,
    rows_from_pairs,
    rows_from_pairs_sumprod,
    softmax_columns,
    sumprod,
    transpose,
)


class Model(GraphFreeModel):
    """microgpt on flat float lists, with forward caches and a hand-written backward."""

    memory_kind = "lists"

    # the products: by `math.sumprod` where Python has it
    matvec = staticmethod(matvec_sumprod if sumprod else matvec)
    outer_sum = staticmethod(outer_sum_sumprod if sumprod else outer_sum)
    rows_from_pairs = staticmethod(rows_from_pairs_sumprod if sumprod else rows_from_pairs)

    def __init__(self, cfg, vocab_size, weights, adam=AdamConfig()):
        super().__init__(cfg, vocab_size, adam)
        self.offsets = self.layout.offsets  # name -> start in self.params
        self.params = self.layout.flatten(weights)
        self.m = [0.0] * len(self.params)  # Adam's running mean of gradients
        self.v = [0.0] * len(self.params)  # Adam's running mean of squared gradients
        self._refresh_views()

    @property
    def num_params(self):
        return len(self.params)

    def weights(self):
        """The parameters keyed like `init_weights`, as lists of rows."""
        return self.layout.unflatten(self.params)

    def _matrix(self, name, rows, cols):
        start = self.offsets[name]
        return self.params[start : start + rows * cols]

    def _refresh_views(self):
        """Per-matrix slices for the forward pass and transposes for the backward pass."""
        E, V = self.cfg.n_embd, self.vocab_size
        # embedding rows as lists: each position reads one of each
        self.wte = [list(row) for row in zip(*[iter(self._matrix("wte", V, E))] * E)]
        self.wpe = [
            list(row) for row in zip(*[iter(self._matrix("wpe", self.cfg.block_size, E))] * E)
        ]
        self.lm_head = self._matrix("lm_head", V, E)
        self.lm_head_t = transpose(self.lm_head, E)
        self.layers = []
        for li in range(self.cfg.n_layer):
            # wq, wk, wv are adjacent in the flat list: one 3E x E matrix, one product
            start = self.offsets[f"layer{li}.attn_wq"]
            qkv = self.params[start : start + 3 * E * E]
            wo = self._matrix(f"layer{li}.attn_wo", E, E)
            fc1 = self._matrix(f"layer{li}.mlp_fc1", 4 * E, E)
            fc2 = self._matrix(f"layer{li}.mlp_fc2", E, 4 * E)
            # the MLP is used one hidden unit at a time: rows of fc1, columns of fc2
            fc1_rows = list(zip(*[iter(fc1)] * E))
            fc2_cols = list(zip(*[iter(transpose(fc2, 4 * E))] * E))
            self.layers.append(
                (qkv, transpose(qkv, E), wo, transpose(wo, E), fc1, fc1_rows, fc2_cols)
            )

    # -- forward ------------------------------------------------------------

    def empty_cache(self):
        """Per layer: the keys and the values of the positions so far, each one flat list."""
        return [[] for _ in range(self.cfg.n_layer)], [[] for _ in range(self.cfg.n_layer)]

    def forward(self, token_id, pos_id, keys, values):
        """(logits, trace): the trace holds what the backward pass in `loss_and_grad` needs."""
        cfg = self.cfg
        E, H, D = cfg.n_embd, cfg.n_head, cfg.head_dim
        inv_n = E**-1
        inv_sqrt_d = (D**0.5) ** -1
        x_emb = list(map(add, self.wte[token_id], self.wpe[pos_id]))
        x, s_emb = rmsnorm(x_emb, inv_n)
        layer_traces = []
        for li, (qkv_w, _, wo, _, fc1, _, fc2_cols) in enumerate(self.layers):
            x_in = x
            n1, s1 = rmsnorm(x, inv_n)
            qkv = self.matvec(qkv_w, n1, 3 * E)
            q, k_all, v_all = qkv[:E], keys[li], values[li]
            k_all += qkv[E : 2 * E]
            v_all += qkv[2 * E :]
            # all heads at once: position-major (seen, H) scores, then (seen, E) products
            seen = pos_id + 1
            scores = dot_groups(k_all, q * seen, D)
            attn = softmax_columns([score * inv_sqrt_d for score in scores], H)
            attn_out = column_sums(map(mul, v_all, repeat_each(attn, D)), E)
            x_mid = list(map(add, self.matvec(wo, attn_out, E), x_in))
            n2, s2 = rmsnorm(x_mid, inv_n)
            hidden = self.matvec(fc1, n2, 4 * E)
            # ReLU zeroes most hidden units (more as training goes on): fc2 reads only the rest
            active = [j for j, hj in enumerate(hidden) if hj > 0]
            act = [hidden[j] for j in active]
            x = x_mid
            if active:
                fc2_active = list(chain.from_iterable(zip(*[fc2_cols[j] for j in active])))
                x = list(map(add, self.matvec(fc2_active, act, E), x_mid))
            layer_traces.append((x_in, n1, s1, q, attn, attn_out, x_mid, n2, s2, active, act))
        logits = self.matvec(self.lm_head, x, self.vocab_size)
        return logits, (token_id, pos_id, x_emb, s_emb, layer_traces, x)

    # -- backward -----------------------------------------------------------

    def train_step(self, tokens, step, num_steps):
        """Forward, backward and one Adam update; returns the loss as a float."""
        loss, grad = self.loss_and_grad(tokens)
        self.adam_step(grad, step, num_steps)
        return loss

    def loss_and_grad(self, tokens):
        """Mean cross-entropy over the name and its gradient, flat like `params`."""
        cfg = self.cfg
        E, H, D, L = cfg.n_embd, cfg.n_head, cfg.head_dim, cfg.n_layer
        V = self.vocab_size
        n = cfg.positions(len(tokens))
        inv_n = E**-1
        inv_sqrt_d = (D**0.5) ** -1
        keys, values = self.empty_cache()
        traces, dlogits, losses = [], [], []
        inv_len = 1 / n
        for pos_id in range(n):
            logits, trace = self.forward(tokens[pos_id], pos_id, keys, values)
            probs = softmax(logits)
            target = tokens[pos_id + 1]
            losses.append(-math.log(probs[target]))
            # d(mean cross-entropy)/d(logits) = (probs - onehot) / n
            d = [p * inv_len for p in probs]
            d[target] = (probs[target] - 1) * inv_len
            traces.append(trace)
            dlogits.append(d)
        loss = left_sum(losses) * inv_len

        # gradients of keys and values per layer (flat over positions), summed over later
        # positions; each position's is complete once the backward pass reaches it
        dkeys = [[0.0] * (n * E) for _ in range(L)]
        dvalues = [[0.0] * (n * E) for _ in range(L)]
        # (dy, x) pairs of every product y = W x, for the weight gradients at the end
        lm_pairs = []
        # qkv, wo, then per hidden unit (coefficient, vector) for fc1 rows and fc2 columns
        layer_pairs = [
            ([], [], [[] for _ in range(4 * E)], [[] for _ in range(4 * E)]) for _ in range(L)
        ]
        dwte = [[0.0] * E for _ in range(V)]
        dwpe = [[0.0] * E for _ in range(cfg.block_size)]
        for pos_id in reversed(range(n)):
            token_id, _, x_emb, s_emb, layer_traces, x_out = traces[pos_id]
            dy = dlogits[pos_id]
            lm_pairs.append((dy, x_out))
            dx = self.matvec(self.lm_head_t, dy, E)
            for li in reversed(range(L)):
                _, qkv_t, _, wo_t, _, fc1_rows, fc2_cols = self.layers[li]
                qkv_pairs, wo_pairs, fc1_pairs, fc2_pairs = layer_pairs[li]
                (x_in, n1, s1, q, attn, attn_out, x_mid, n2, s2, active, act) = layer_traces[li]
                # MLP: x = fc2 relu(fc1 rmsnorm(x_mid)) + x_mid; inactive units pass no gradient
                if active:
                    fc2_active = list(chain.from_iterable([fc2_cols[j] for j in active]))
                    dhidden = self.matvec(fc2_active, dx, len(active))
                    for j, a, d in zip(active, act, dhidden):
                        fc2_pairs[j].append((a, dx))
                        fc1_pairs[j].append((d, n2))
                    fc1_active = list(chain.from_iterable(zip(*[fc1_rows[j] for j in active])))
                    dn2 = self.matvec(fc1_active, dhidden, E)
                    dx = list(map(add, dx, rmsnorm_backward(dn2, x_mid, s2, inv_n)))
                # attention: x_mid = wo attn_out + x_in
                wo_pairs.append((dx, attn_out))
                dattn = self.matvec(wo_t, dx, E)
                seen = pos_id + 1  # positions this one attended to, as (seen, H) or (seen, E)
                dattn_w = dot_groups(values[li], dattn * seen, D)  # map() stops at seen * E
                dot_wdw = column_sums(map(mul, attn, dattn_w), H)
                # softmax backward, then the 1/sqrt(d) scale of the scores
                dscores = [
                    w * (g - c) * inv_sqrt_d for w, g, c in zip(attn, dattn_w, dot_wdw * seen)
                ]
                dq = column_sums(map(mul, keys[li], repeat_each(dscores, D)), E)
                # outer products dscores q^T and attn dattn^T; map() stops at the shorter
                # list, dropping the finished positions after this one
                dkeys[li] = dk = list(
                    map(add, dkeys[li], map(mul, repeat_each(dscores, D), q * seen))
                )
                dvalues[li] = dv = list(
                    map(add, dvalues[li], map(mul, repeat_each(attn, D), dattn * seen))
                )
                dqkv = dq + dk[pos_id * E :] + dv[pos_id * E :]
                qkv_pairs.append((dqkv, n1))
                dn1 = self.matvec(qkv_t, dqkv, E)
                dx = list(map(add, dx, rmsnorm_backward(dn1, x_in, s1, inv_n)))
            dx = rmsnorm_backward(dx, x_emb, s_emb, inv_n)
            dwte[token_id] = list(map(add, dwte[token_id], dx))
            dwpe[pos_id] = list(map(add, dwpe[pos_id], dx))

        grad = list(chain.from_iterable(dwte))
        grad += chain.from_iterable(dwpe)
        grad += self.outer_sum(lm_pairs, V, E)
        for qkv_pairs, wo_pairs, fc1_pairs, fc2_pairs in layer_pairs:
            grad += self.outer_sum(qkv_pairs, 3 * E, E)
            grad += self.outer_sum(wo_pairs, E, E)
            grad += self.rows_from_pairs(fc1_pairs, E)
            grad += transpose(self.rows_from_pairs(fc2_pairs, E), E)
        return loss, grad

    def adam_step(self, grad, step, num_steps):
        """The baseline's Adam, formula for formula, over the flat lists."""
        self.params, self.m, self.v = adam_on_floats(
            self.params, grad, self.m, self.v, self.adam, step, num_steps
        )
        self._refresh_views()

    # -- sampling -----------------------------------------------------------

    def sampler(self, temperature):
        """`next_probs(token_id, pos_id)`: the next token's probabilities, as floats."""
        keys, values = self.empty_cache()
        inv_temperature = temperature**-1

        def next_probs(token_id, pos_id):
            logits, _ = self.forward(token_id, pos_id, keys, values)
            return softmax([logit * inv_temperature for logit in logits])

        return next_probs
