"""Stage `jit`: `flat`'s algorithm compiled by numba over float64 arrays.

`tensor` still makes a numpy call for every array operation of a step, as many
whatever the name's length (chapter 14 counts them): products, ufuncs and
reductions, index reads and writes, reshapes and transposes, new arrays. Each works
on a few dozen numbers, so numpy's fixed cost of a call (parsing arguments, choosing
a loop, making an array object) outweighs its arithmetic. numba compiles the whole
step to machine code: Python enters it once per step and no per-call cost is left
inside. The loops are `flat`'s, written out plainly: the forward pass runs one
position at a time with its key/value cache, the backward pass walks the positions
in reverse, each weight gradient is summed over the positions once per matrix, and
Adam updates the flat buffers in place.

What is left is the arithmetic itself, Adam's pass over 4192 numbers (bound by memory
and by the square root and division of each) and a small fixed cost per step: the
call from Python and the arrays of the trace. Sums may be reordered, multiply-adds
fused and divisions done by reciprocals (`FASTMATH`), so that the compiler can use
vector instructions: results agree with the baseline to rounding. Compiled code is
cached on disk, so only the first process on a machine waits for the compiler.
"""

import math

import numba

from ..config import AdamConfig
from ._arrays import ArrayModel, np

# reordered sums, fused multiply-adds, and a division as a product with the reciprocal
# (which lets Adam's loop run on vector instructions); no assumption that numbers are
# finite, so an overflow still shows as inf or NaN in the loss and the probabilities
FASTMATH = {"reassoc", "contract", "arcp"}


def compiled(func):
    """`func` compiled to machine code, cached where numba finds a folder it can write.

    Division by zero gives inf, as in numpy, so loops need no check per division.
    """
    try:
        return numba.njit(func, cache=True, error_model="numpy", fastmath=FASTMATH)
    except RuntimeError:  # no writable cache folder: compile again in each process
        return numba.njit(func, error_model="numpy", fastmath=FASTMATH)


# ---------------------------------------------------------------------------
# kernels


@compiled
def matvec(w, x, out):
    """out = w @ x."""
    for r in range(w.shape[0]):
        total = 0.0
        for c in range(w.shape[1]):
            total += w[r, c] * x[c]
        out[r] = total


@compiled
def matvec_t_add(w, dy, out):
    """out += w.T @ dy, row by row of w: the gradient of `w @ x` with respect to x."""
    for r in range(w.shape[0]):
        d = dy[r]
        for c in range(w.shape[1]):
            out[c] += d * w[r, c]


@compiled
def add_products(g, dys, xs):
    """g += the sum over positions t of dys[t] xs[t]^T: the gradient of `w @ x` for w.

    Rows with a zero gradient (ReLU's inactive units) are skipped.
    """
    for t in range(dys.shape[0]):
        for r in range(g.shape[0]):
            d = dys[t, r]
            if d != 0.0:
                for c in range(g.shape[1]):
                    g[r, c] += d * xs[t, c]


@compiled
def softmax(x, out):
    """out = softmax(x), the baseline's way: exp(x - max) times 1 / sum."""
    top = x[0]
    for i in range(1, x.size):
        top = max(top, x[i])
    total = 0.0
    for i in range(x.size):
        out[i] = math.exp(x[i] - top)
        total += out[i]
    inv_total = 1.0 / total
    for i in range(x.size):
        out[i] *= inv_total


@compiled
def rmsnorm(x, out):
    """out = x rescaled to unit root-mean-square; returns the scale."""
    total = 0.0
    for i in range(x.size):
        total += x[i] * x[i]
    scale = 1.0 / math.sqrt(total / x.size + 1e-5)
    for i in range(x.size):
        out[i] = x[i] * scale
    return scale


@compiled
def rmsnorm_backward_add(dy, x, scale, out):
    """out += the gradient of rmsnorm at `x` (scale = (mean(x^2) + eps)^-1/2)."""
    total = 0.0
    for i in range(x.size):
        total += dy[i] * x[i]
    c = total * (-scale * scale * scale / x.size)
    for i in range(x.size):
        out[i] += scale * dy[i] + c * x[i]


# ---------------------------------------------------------------------------
# the model's passes; `dims` is (n_layer, n_embd, n_head, vocab_size, block_size)


@compiled
def matrix(buf, start, rows, cols):
    return buf[start : start + rows * cols].reshape((rows, cols))


@compiled
def matrices(buf, offsets, dims):
    """(wte, wpe, lm_head, layers) as views of `buf`, weights or their gradients; layers[li]
    is (qkv, wo, fc1, fc2). `offsets` holds where each starts, in this order."""
    L, E, H, V, B = dims
    layers = []
    for li in range(L):
        at = 3 + 4 * li
        qkv = matrix(buf, offsets[at], 3 * E, E)  # wq, wk, wv are adjacent: one product
        wo = matrix(buf, offsets[at + 1], E, E)
        fc1 = matrix(buf, offsets[at + 2], 4 * E, E)
        fc2 = matrix(buf, offsets[at + 3], E, 4 * E)
        layers.append((qkv, wo, fc1, fc2))
    wte = matrix(buf, offsets[0], V, E)
    wpe = matrix(buf, offsets[1], B, E)
    return wte, wpe, matrix(buf, offsets[2], V, E), layers


@compiled
def new_trace(dims, positions):
    """What the forward pass keeps per position for the backward pass; q, k, v are the cache."""
    L, E, H, V, _ = dims
    T = positions
    return (
        np.empty((T, E)),  # x_emb: token plus position embedding
        np.empty(T),  # s_emb: its rmsnorm scale
        np.empty((L + 1, T, E)),  # resid: the residual stream into each layer and out of the last
        np.empty((L, T, E)),  # n1: rmsnorm of the layer's input
        np.empty((L, T)),  # s1
        np.empty((L, T, 3 * E)),  # qkv
        np.empty((L, T, H, T)),  # attn: each head's weights over the positions seen
        np.empty((L, T, E)),  # attn_out: the heads, side by side
        np.empty((L, T, E)),  # x_mid: the residual stream after attention
        np.empty((L, T, E)),  # n2: its rmsnorm
        np.empty((L, T)),  # s2
        np.empty((L, T, 4 * E)),  # hidden: the MLP's units after ReLU
        np.empty((T, V)),  # logits
    )


@compiled
def forward(weights, dims, token, t, trace):
    """Logits of position `t` (a view into the trace); fills the trace at `t`."""
    L, E, H, V, _ = dims
    D = E // H
    inv_sqrt_d = 1.0 / math.sqrt(D)
    wte, wpe, lm_head, layers = weights
    x_emb, s_emb, resid, n1, s1, qkv, attn, attn_out, x_mid, n2, s2, hidden, logits = trace
    x_emb[t] = wte[token] + wpe[t]
    s_emb[t] = rmsnorm(x_emb[t], resid[0, t])
    for li in range(L):
        qkv_w, wo, fc1, fc2 = layers[li]
        s1[li, t] = rmsnorm(resid[li, t], n1[li, t])
        matvec(qkv_w, n1[li, t], qkv[li, t])
        cache, q, out = qkv[li], qkv[li, t], attn_out[li, t]
        for h in range(H):
            hs = h * D
            w = attn[li, t, h, : t + 1]
            for s in range(t + 1):
                score = 0.0
                for j in range(hs, hs + D):
                    score += q[j] * cache[s, E + j]
                w[s] = score * inv_sqrt_d
            softmax(w, w)
            for j in range(hs, hs + D):
                total = 0.0
                for s in range(t + 1):
                    total += w[s] * cache[s, 2 * E + j]
                out[j] = total
        matvec(wo, out, x_mid[li, t])
        x_mid[li, t] += resid[li, t]
        s2[li, t] = rmsnorm(x_mid[li, t], n2[li, t])
        units = hidden[li, t]
        matvec(fc1, n2[li, t], units)
        for j in range(4 * E):
            units[j] = max(units[j], 0.0)
        matvec(fc2, units, resid[li + 1, t])
        resid[li + 1, t] += x_mid[li, t]
    matvec(lm_head, resid[L, t], logits[t])
    return logits[t]


@compiled
def backward(weights, grads, dims, tokens, trace, dlogits):
    """Adds the gradient of the loss to `grads`.

    Positions are visited in reverse: a position's key and value gradients are complete
    once the pass reaches it, as only later positions attend to it. Each product's
    weight gradient is summed over all positions at the end, once per matrix.
    """
    L, E, H, V, _ = dims
    D = E // H
    T = dlogits.shape[0]
    inv_sqrt_d = 1.0 / math.sqrt(D)
    wte, wpe, lm_head, layers = weights
    g_wte, g_wpe, g_lm_head, g_layers = grads
    x_emb, s_emb, resid, n1, s1, qkv, attn, attn_out, x_mid, n2, s2, hidden, logits = trace
    # per layer and position, the gradients of the outputs of its four products
    d_out = np.empty((L, T, E))  # fc2: the layer's output
    d_hidden = np.empty((L, T, 4 * E))  # fc1: zero where ReLU was inactive
    d_mid = np.empty((L, T, E))  # wo: x_mid
    d_qkv = np.zeros((L, T, 3 * E))  # qkv: keys and values gather from later positions
    dx, dn, dattn, dweights = np.empty(E), np.empty(E), np.empty(E), np.empty(T)
    for t in range(T - 1, -1, -1):
        dx[:] = 0.0
        matvec_t_add(lm_head, dlogits[t], dx)
        for li in range(L - 1, -1, -1):
            qkv_w, wo, fc1, fc2 = layers[li]
            # MLP: x = fc2 relu(fc1 rmsnorm(x_mid)) + x_mid; inactive units pass no gradient
            d_out[li, t] = dx
            units, dh = hidden[li, t], d_hidden[li, t]
            dh[:] = 0.0
            matvec_t_add(fc2, dx, dh)
            dn[:] = 0.0
            for j in range(4 * E):
                if units[j] > 0.0:
                    for c in range(E):
                        dn[c] += dh[j] * fc1[j, c]
                else:
                    dh[j] = 0.0
            rmsnorm_backward_add(dn, x_mid[li, t], s2[li, t], dx)
            # attention: x_mid = wo attn_out + x_in
            d_mid[li, t] = dx
            dattn[:] = 0.0
            matvec_t_add(wo, dx, dattn)
            cache, q, dcache = qkv[li], qkv[li, t], d_qkv[li]
            for h in range(H):
                hs = h * D
                w = attn[li, t, h]
                dot = 0.0  # of the weights and their gradients, for the softmax backward
                for s in range(t + 1):
                    g = 0.0
                    for j in range(hs, hs + D):
                        g += dattn[j] * cache[s, 2 * E + j]
                    dweights[s] = g
                    dot += w[s] * g
                for s in range(t + 1):
                    dscore = w[s] * (dweights[s] - dot) * inv_sqrt_d
                    for j in range(hs, hs + D):
                        dcache[t, j] += dscore * cache[s, E + j]  # q
                        dcache[s, E + j] += dscore * q[j]  # k
                        dcache[s, 2 * E + j] += w[s] * dattn[j]  # v
            dn[:] = 0.0
            matvec_t_add(qkv_w, dcache[t], dn)
            rmsnorm_backward_add(dn, resid[li, t], s1[li, t], dx)
        # x_emb = wte[token] + wpe[t], then rmsnorm
        dn[:] = 0.0
        rmsnorm_backward_add(dx, x_emb[t], s_emb[t], dn)
        g_wte[tokens[t]] += dn
        g_wpe[t] += dn
    add_products(g_lm_head, dlogits, resid[L])
    for li in range(L):
        g_qkv, g_wo, g_fc1, g_fc2 = g_layers[li]
        add_products(g_fc2, d_out[li], hidden[li])
        add_products(g_fc1, d_hidden[li], n2[li])
        add_products(g_wo, d_mid[li], attn_out[li])
        add_products(g_qkv, d_qkv[li], n1[li])


@compiled
def loss_and_grad(params, grads, offsets, dims, tokens, positions):
    """Mean cross-entropy over `positions` positions; its gradient goes into `grads`."""
    weights = matrices(params, offsets, dims)
    trace = new_trace(dims, positions)
    dlogits = np.empty((positions, dims[3]))
    inv_len = 1.0 / positions
    loss = 0.0
    for t in range(positions):
        logits = forward(weights, dims, tokens[t], t, trace)
        probs = dlogits[t]
        softmax(logits, probs)
        target = tokens[t + 1]
        loss -= math.log(probs[target])
        # d(mean cross-entropy)/d(logits) = (probs - onehot) / n
        probs[target] -= 1.0
        probs *= inv_len
    grads[:] = 0.0
    backward(weights, matrices(grads, offsets, dims), dims, tokens, trace, dlogits)
    return loss * inv_len


@compiled
def adam_step(params, grads, m, v, lr_t, beta1, beta2, eps, bias1, bias2):
    """The baseline's Adam, formula for formula, in place."""
    for i in range(params.size):
        g = grads[i]
        m[i] = beta1 * m[i] + (1 - beta1) * g
        v[i] = beta2 * v[i] + (1 - beta2) * (g * g)
        params[i] -= lr_t * (m[i] / bias1) / (math.sqrt(v[i] / bias2) + eps)


@compiled
def train_step(params, grads, m, v, offsets, dims, tokens, positions, adam_args):
    """One step of training, one call from Python; returns the loss."""
    loss = loss_and_grad(params, grads, offsets, dims, tokens, positions)
    lr_t, beta1, beta2, eps, bias1, bias2 = adam_args
    adam_step(params, grads, m, v, lr_t, beta1, beta2, eps, bias1, bias2)
    return loss


@compiled
def next_probs(params, offsets, dims, token, t, trace, inv_temperature, probs):
    """Fills `probs` with the next token's probabilities at temperature 1 / inv_temperature."""
    logits = forward(matrices(params, offsets, dims), dims, token, t, trace)
    logits *= inv_temperature
    softmax(logits, probs)


# ---------------------------------------------------------------------------
# the model


class Model(ArrayModel):
    """microgpt as `flat` computes it, compiled: flat float64 buffers and a few entry points."""

    def __init__(self, cfg, vocab_size, weights, adam=AdamConfig()):
        super().__init__(cfg, vocab_size, weights, adam)
        self.dims = (cfg.n_layer, cfg.n_embd, cfg.n_head, vocab_size, cfg.block_size)
        names = ["wte", "wpe", "lm_head"]  # where `matrices` finds each matrix, in its order
        for li in range(cfg.n_layer):
            names += [f"layer{li}.{part}" for part in ("attn_wq", "attn_wo", "mlp_fc1", "mlp_fc2")]
        self.offsets = np.array([self.layout.offsets[name] for name in names], dtype=np.int64)

    def _ids(self, tokens):
        """The token ids as an array, and the number of positions trained on."""
        return np.array(tokens, dtype=np.int64), self.cfg.positions(len(tokens))

    def loss_and_grad(self, tokens):
        """Mean cross-entropy over the name and its gradient (the `grads` buffer)."""
        ids, positions = self._ids(tokens)
        loss = loss_and_grad(self.params, self.grads, self.offsets, self.dims, ids, positions)
        return loss, self.grads

    def train_step(self, tokens, step, num_steps):
        """Forward, backward and one Adam update; returns the loss as a float."""
        adam = self.adam
        adam_args = (adam.lr_at(step, num_steps), adam.beta1, adam.beta2, adam.eps)
        adam_args += adam.bias_corrections(step)
        ids, positions = self._ids(tokens)
        state = (self.params, self.grads, self.m, self.v)
        return train_step(*state, self.offsets, self.dims, ids, positions, adam_args)

    def sampler(self, temperature):
        """`next_probs(token_id, pos_id)`: the next token's probabilities, as floats."""
        trace = new_trace(self.dims, self.cfg.block_size)
        inv_temperature = temperature**-1
        probs = np.empty(self.vocab_size)

        def probs_after(token_id, pos_id):
            args = (token_id, pos_id, trace, inv_temperature, probs)
            next_probs(self.params, self.offsets, self.dims, *args)
            return probs.tolist()

        return probs_after
