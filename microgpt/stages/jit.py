"""Stage `jit`: the step compiled by numba over float64 arrays, nothing allocated in it.

`tensor` still makes a numpy call for every array operation of a step, as many
whatever the name's length (chapter 14 counts them): products, ufuncs and
reductions, index reads and writes, reshapes and transposes, new arrays. Each works
on a few dozen numbers, so numpy's fixed cost of a call (parsing arguments, choosing
a loop, making an array object) outweighs its arithmetic. numba compiles the whole
step to machine code: Python enters it once per step and no per-call cost is left
inside.

Compiled, a step is bound by how well its loops use the processor, so they are
written for it. Every array a step writes is a view of one work buffer, allocated
with the model and grown for larger batches, so a step allocates nothing. The
forward pass goes layer by layer over a name's positions; attention loops over the
keys and values of the positions seen so far (the cache): no mask, no work above
the diagonal. The backward pass goes layer by layer from the top, over every
position of the batch at once. Matrix products take four rows at a time, so each
number loaded serves four products and consecutive updates of memory do not wait
for each other. A matrix's gradient is complete as soon as the backward pass has
gone through it, and that is its last use in the step: Adam updates it right
there, while its gradient is still in the cache. The exponentials of the softmaxes
are a polynomial the compiler turns into vector instructions, not a call into the C
library per number.

A batch (`train_batch`) is `tensor`'s algorithm: several names per step and the
mean loss over every target token of the batch. `tensor` pads the names to one
length and masks the padding; here each name's positions are looped over, which
gives the same numbers without the padded work.

What is left is arithmetic: the products, and Adam's square root and division for
every parameter, which no reordering removes. Sums may be reordered, multiply-adds
fused and divisions done by reciprocals (`FASTMATH`), and the exponential is exact
to about a unit in the last place rather than correctly rounded: results agree with
the baseline to rounding. Compiled code is cached on disk, so only the first process
on a machine waits for the compiler.
"""

import math

import numba

from ..config import AdamConfig
from ._arrays import ArrayModel, np

# reordered sums, fused multiply-adds, and a division as a product with the reciprocal
# (which lets Adam's loop run on vector instructions); no assumption that numbers are
# finite, so an overflow still shows as inf or NaN in the loss and the probabilities
FASTMATH = {"reassoc", "contract", "arcp"}

PAD = -1  # fills a batch's rows after each name's last token


def compiled(func):
    """`func` compiled to machine code, cached where numba finds a folder it can write.

    Division by zero gives inf, as in numpy, so loops need no check per division.
    """
    try:
        return numba.njit(func, cache=True, error_model="numpy", fastmath=FASTMATH)
    except RuntimeError:  # no writable cache folder: compile again in each process
        return numba.njit(func, error_model="numpy", fastmath=FASTMATH)


# ---------------------------------------------------------------------------
# kernels: each writes into arrays it is given


@compiled
def matmul_t(x, w, out):
    """out = x @ w.T: row n of `out` holds the dot products of x[n] with the rows of w.

    Four rows of w at a time, so that each number of x is loaded once for four products.
    """
    rows, cols = w.shape
    fours = rows - rows % 4
    for n in range(x.shape[0]):
        for r in range(0, fours, 4):
            t0 = t1 = t2 = t3 = 0.0
            for c in range(cols):
                xc = x[n, c]
                t0 += xc * w[r, c]
                t1 += xc * w[r + 1, c]
                t2 += xc * w[r + 2, c]
                t3 += xc * w[r + 3, c]
            out[n, r], out[n, r + 1], out[n, r + 2], out[n, r + 3] = t0, t1, t2, t3
        for r in range(fours, rows):
            total = 0.0
            for c in range(cols):
                total += x[n, c] * w[r, c]
            out[n, r] = total


@compiled
def matmul_add(dy, w, out):
    """out += dy @ w: the gradient of `x @ w.T` with respect to x.

    Four rows of w at a time, added to every row of `out` in one pass: a row of
    `out` is read and written once for four rows of w, and the next update goes to
    another row, so it need not wait for this one's store.
    """
    rows, cols = w.shape
    fours = rows - rows % 4
    for r in range(0, fours, 4):
        for n in range(dy.shape[0]):
            d0, d1, d2, d3 = dy[n, r], dy[n, r + 1], dy[n, r + 2], dy[n, r + 3]
            for c in range(cols):
                out[n, c] += d0 * w[r, c] + d1 * w[r + 1, c] + d2 * w[r + 2, c] + d3 * w[r + 3, c]
    for r in range(fours, rows):
        for n in range(dy.shape[0]):
            d = dy[n, r]
            for c in range(cols):
                out[n, c] += d * w[r, c]


@compiled
def add_outer(dy, x, g):
    """g += dy.T @ x: the gradient of `x @ w.T` for w, summed over the rows (positions).

    Four positions at a time, each row of g read and written once for all four.
    """
    positions, rows = dy.shape
    fours = positions - positions % 4
    for n in range(0, fours, 4):
        for r in range(rows):
            d0, d1, d2, d3 = dy[n, r], dy[n + 1, r], dy[n + 2, r], dy[n + 3, r]
            for c in range(g.shape[1]):
                g[r, c] += d0 * x[n, c] + d1 * x[n + 1, c] + d2 * x[n + 2, c] + d3 * x[n + 3, c]
    for n in range(fours, positions):
        for r in range(rows):
            d = dy[n, r]
            for c in range(g.shape[1]):
                g[r, c] += d * x[n, c]


# exp(r) for |r| <= ln(2) / 2: its Taylor series to r^13 / 13!, below half a unit in
# the last place; ln(2) in two parts, the first exact in k * ln(2) for the k used here
EXP_TAYLOR = tuple(1.0 / math.factorial(i) for i in range(13, -1, -1))
LN2_HI, LN2_LO = 0.6931471803691238, 1.9082149292705877e-10
# 1.5 * 2**52: adding it to a small integer-valued float puts the integer in the low
# bits of the float's representation
ROUNDING_BIAS = 6755399441055744.0
ROUNDING_BIAS_BITS = 0x4338000000000000


@compiled
def power_of_two(k):
    """2**k for an integer-valued float k in -1022..1023, made from its bits."""
    biased = np.float64(k + (1023.0 + ROUNDING_BIAS)).view(np.int64) - ROUNDING_BIAS_BITS
    return np.int64(biased << 52).view(np.float64)


@compiled
def exp_of_negatives(x):
    """x = exp(x) in place, for x <= 0 (and NaN), within two units in the last place.

    math.exp is a call into the C library for each number; this loop is arithmetic
    the compiler turns into vector instructions: exp(x) = 2**k exp(r) with
    k = round(x / ln 2) and |r| <= ln(2) / 2. Below 2**-1022 the result is a
    subnormal number, made by a second factor.
    """
    for i in range(x.size):
        xi = x[i]
        if xi < -746.0:  # exp underflows to 0 (NaN compares false and stays NaN)
            xi = -746.0
        k = np.floor(xi * 1.4426950408889634 + 0.5)  # x / ln 2, rounded
        r = (xi - k * LN2_HI) - k * LN2_LO
        p = 0.0
        for c in EXP_TAYLOR:
            p = p * r + c
        if not k >= -1077.0:  # NaN: any power of two keeps it NaN
            k = 0.0
        k_normal = max(k, -1022.0)
        x[i] = p * power_of_two(k_normal) * power_of_two(k - k_normal)


@compiled
def softmax_rows(x):
    """Softmax of each row of the 2-d array x, in place, the baseline's way:
    exp(x - max) times 1 / sum; one pass of exponentials for all rows."""
    for n in range(x.shape[0]):
        top = x[n, 0]
        for i in range(1, x.shape[1]):
            top = max(top, x[n, i])
        for i in range(x.shape[1]):
            x[n, i] -= top
    exp_of_negatives(x.reshape(x.size))
    for n in range(x.shape[0]):
        total = 0.0
        for i in range(x.shape[1]):
            total += x[n, i]
        inv_total = 1.0 / total
        for i in range(x.shape[1]):
            x[n, i] *= inv_total


@compiled
def softmax(x, out):
    """out = softmax(x), the baseline's way: exp(x - max) times 1 / sum."""
    out[:] = x
    softmax_rows(out.reshape((1, out.size)))


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
    """out += the gradient of rmsnorm at each row of `x` (scale = (mean(x^2) + eps)^-1/2)."""
    for n in range(x.shape[0]):
        total = 0.0
        for i in range(x.shape[1]):
            total += dy[n, i] * x[n, i]
        c = total * (-scale[n] * scale[n] * scale[n] / x.shape[1])
        for i in range(x.shape[1]):
            out[n, i] += scale[n] * dy[n, i] + c * x[n, i]


@compiled
def add_rows(x, out):
    """out += x, for 2-d arrays of one shape."""
    for n in range(x.shape[0]):
        for i in range(x.shape[1]):
            out[n, i] += x[n, i]


@compiled
def adam(p, g, m, v, adam_args):
    """The baseline's Adam, formula for formula, in place."""
    lr_t, beta1, beta2, eps, bias1, bias2 = adam_args
    for i in range(p.size):
        m[i] = beta1 * m[i] + (1 - beta1) * g[i]
        v[i] = beta2 * v[i] + (1 - beta2) * (g[i] * g[i])
        p[i] -= lr_t * (m[i] / bias1) / (math.sqrt(v[i] / bias2) + eps)


# ---------------------------------------------------------------------------
# where things are: matrices in the flat buffers, arrays in the work buffer;
# `dims` is (n_layer, n_embd, n_head, vocab_size, block_size)


@compiled
def matrix(buf, start, rows, cols):
    return buf[start : start + rows * cols].reshape((rows, cols))


@compiled
def embedding_starts(dims):
    """Where wte, wpe and lm_head start in a flat buffer, in microgpt's order."""
    _, E, _, V, B = dims
    return 0, V * E, (V + B) * E


@compiled
def layer_starts(dims, li):
    """Where layer li's qkv (wq, wk, wv, adjacent: one product), wo, fc1 and fc2 start."""
    _, E, _, V, B = dims
    at = (2 * V + B) * E + li * 12 * E * E
    return at, at + 3 * E * E, at + 4 * E * E, at + 8 * E * E


@compiled
def take(work, at, shape):
    """The array of `shape` at `at` in `work`, and where the next one starts."""
    size = 1
    for d in shape:
        size *= d
    return work[at : at + size].reshape(shape), at + size


@compiled
def carve(work, dims, rows):
    """(trace, scratch, size) for `rows` positions: views of the front of `work`, and
    how many of its numbers they use.

    The trace is what the forward pass keeps for the backward pass (q, k and v are
    the cache); the scratch holds the backward pass's gradients. Arrays of the same
    width are cut in one piece and sliced: a slice is cheaper than a reshape.
    """
    L, E, H, V, B = dims
    N = rows
    # the n_embd-wide vectors of each position
    stream, at = take(work, 0, (5 * L + 2, N, E))
    x_emb = stream[0]  # token plus position embedding
    resid = stream[1 : L + 2]  # the residual stream into each layer, and out of the last
    n1 = stream[L + 2 : 2 * L + 2]  # the rmsnorm of a layer's input
    heads = stream[2 * L + 2 : 3 * L + 2]  # the attention heads' outputs, side by side
    x_mid = stream[3 * L + 2 : 4 * L + 2]  # the residual stream after attention
    n2 = stream[4 * L + 2 : 5 * L + 2]  # its rmsnorm
    scales, at = take(work, at, (2 * L + 1, N))  # the rmsnorm scales of x_emb, n1, n2
    qkv, at = take(work, at, (L, N, 3 * E))
    attn, at = take(work, at, (L, N * H * B))  # a name's attention weights from H B start
    hidden, at = take(work, at, (L, N, 4 * E))  # the MLP's units after ReLU
    logits, at = take(work, at, (N, V))  # then the probabilities, then their gradient
    trace = (x_emb, resid, n1, heads, x_mid, n2, scales, qkv, attn, hidden, logits)
    # the gradients of the residual stream, of a rmsnorm's output, of the heads, of
    # the MLP's units, of q, k and v, and of one head's attention weights
    d_stream, at = take(work, at, (3, N, E))
    dh, at = take(work, at, (N, 4 * E))
    dqkv, at = take(work, at, (N, 3 * E))
    dweights, at = take(work, at, (N,))
    return trace, (d_stream[0], d_stream[1], d_stream[2], dh, dqkv, dweights), at


@compiled
def work_size(dims, rows):
    """How many numbers `carve` cuts for `rows` positions (its last result)."""
    L, E, H, V, B = dims
    trace = (5 * L + 2) * E + (2 * L + 1) + L * (3 * E + H * B + 4 * E) + V
    return rows * (trace + 3 * E + 4 * E + 3 * E + 1)


@compiled
def positions(name, block_size):
    """Positions trained on in a row of a batch, as `GPTConfig.positions` counts them:
    the tokens before the padding, less one, at most the block size."""
    n = name.size
    while name[n - 1] == PAD:
        n -= 1
    return min(block_size, n - 1)


# ---------------------------------------------------------------------------
# the model's passes


@compiled
def triangle(t, H):
    """Where position t's attention weights start among a name's: after H (t' + 1) for t' < t."""
    return H * t * (t + 1) // 2


@compiled
def attention(qkv, weights, heads, lo, hi, dims):
    """Causal self-attention of positions lo..hi-1 of a name: qkv and heads hold the
    name's rows, and the keys and values of positions before lo are the cache.

    `weights` receives the attention weights, position after position (from
    `triangle(t, H)`), each head's over the t + 1 positions seen, and the softmaxes of
    all positions and heads share one pass of exponentials.
    """
    _, E, H, _, _ = dims
    D = E // H
    inv_sqrt_d = 1.0 / math.sqrt(D)
    for t in range(lo, hi):
        at, seen = triangle(t, H), t + 1
        for h in range(H):
            hs, row = h * D, at + h * seen
            for s in range(seen):
                score = 0.0
                for j in range(hs, hs + D):
                    score += qkv[t, j] * qkv[s, E + j]
                weights[row + s] = score * inv_sqrt_d
            top = weights[row]
            for s in range(1, seen):
                top = max(top, weights[row + s])
            for s in range(seen):
                weights[row + s] -= top
    exp_of_negatives(weights[triangle(lo, H) : triangle(hi, H)])
    for t in range(lo, hi):
        at, seen = triangle(t, H), t + 1
        for h in range(H):
            hs, row = h * D, at + h * seen
            total = 0.0
            for s in range(seen):
                total += weights[row + s]
            inv_total = 1.0 / total
            for s in range(seen):
                weights[row + s] *= inv_total
            for j in range(hs, hs + D):
                total = 0.0
                for s in range(seen):
                    total += weights[row + s] * qkv[s, 2 * E + j]
                heads[t, j] = total


@compiled
def forward(params, dims, name, start, lo, hi, trace):
    """Fills the trace at positions lo..hi-1 of `name`, whose position 0 is at row `start`;
    the positions before `lo` must be in the trace already (their keys and values)."""
    L, E, H, V, B = dims
    wte_at, wpe_at, lm_head_at = embedding_starts(dims)
    wte, wpe = matrix(params, wte_at, V, E), matrix(params, wpe_at, B, E)
    x_emb, resid, n1, heads, x_mid, n2, scales, qkv, attn, hidden, logits = trace
    first, last = start + lo, start + hi
    for t in range(lo, hi):
        row, token = start + t, name[t]
        for c in range(E):
            x_emb[row, c] = wte[token, c] + wpe[t, c]
        scales[0, row] = rmsnorm(x_emb[row], resid[0, row])
    for li in range(L):
        qkv_at, wo_at, fc1_at, fc2_at = layer_starts(dims, li)
        for row in range(first, last):
            scales[1 + li, row] = rmsnorm(resid[li, row], n1[li, row])
        matmul_t(n1[li, first:last], matrix(params, qkv_at, 3 * E, E), qkv[li, first:last])
        name_rows = slice(start, start + hi)
        attention(qkv[li, name_rows], attn[li, start * H * B :], heads[li, name_rows], lo, hi, dims)
        matmul_t(heads[li, first:last], matrix(params, wo_at, E, E), x_mid[li, first:last])
        add_rows(resid[li, first:last], x_mid[li, first:last])
        for row in range(first, last):
            scales[1 + L + li, row] = rmsnorm(x_mid[li, row], n2[li, row])
        units = hidden[li, first:last]
        matmul_t(n2[li, first:last], matrix(params, fc1_at, 4 * E, E), units)
        for n in range(units.shape[0]):
            for j in range(4 * E):
                units[n, j] = max(units[n, j], 0.0)
        matmul_t(units, matrix(params, fc2_at, E, 4 * E), resid[li + 1, first:last])
        add_rows(x_mid[li, first:last], resid[li + 1, first:last])
    lm_head = matrix(params, lm_head_at, V, E)
    matmul_t(resid[L, first:last], lm_head, logits[first:last])


@compiled
def learn(dy, x, state, start, adam_args, update):
    """The gradient of `x @ w.T` for the matrix w at `start` of the flat buffers, summed
    over every position (dy.T @ x), into the gradient buffer; with `update`, Adam then
    updates w, while its gradient is still in the cache."""
    rows, cols = dy.shape[1], x.shape[1]
    end = start + rows * cols
    g = matrix(state[1], start, rows, cols)
    g[:] = 0.0
    add_outer(dy, x, g)
    if update:
        p, grads, m, v = state[0], state[1], state[2], state[3]
        adam(p[start:end], grads[start:end], m[start:end], v[start:end], adam_args)


@compiled
def attention_backward(dims, qkv, weights, dheads, dqkv, dweights):
    """Adds the gradients of q, k and v of one name (qkv, dheads and dqkv hold its rows;
    `weights` as `attention` left them).

    A position's query gathers from the keys it saw; its key and value gradients
    gather from every later position that attended to it.
    """
    _, E, H, _, _ = dims
    D = E // H
    inv_sqrt_d = 1.0 / math.sqrt(D)
    for t in range(qkv.shape[0]):
        at, seen = triangle(t, H), t + 1
        for h in range(H):
            hs, row = h * D, at + h * seen
            dot = 0.0  # of the weights and their gradients, for the softmax backward
            for s in range(seen):
                g = 0.0
                for j in range(hs, hs + D):
                    g += dheads[t, j] * qkv[s, 2 * E + j]
                dweights[s] = g
                dot += weights[row + s] * g
            for s in range(seen):  # now the gradients of the scores
                dweights[s] = weights[row + s] * (dweights[s] - dot) * inv_sqrt_d
            for j in range(hs, hs + D):  # q
                total = 0.0
                for s in range(seen):
                    total += dweights[s] * qkv[s, E + j]
                dqkv[t, j] += total
            for s in range(seen):  # k and v
                w, dscore = weights[row + s], dweights[s]
                for j in range(hs, hs + D):
                    dqkv[s, E + j] += dscore * qkv[t, j]
                    dqkv[s, 2 * E + j] += w * dheads[t, j]


@compiled
def backward(state, dims, batch, trace, scratch, adam_args, update):
    """The gradient of the loss into the gradient buffer; with `update`, Adam's step too.

    The pass goes layer by layer from the top, over every position of the batch at
    once, and uses each matrix for the last time when it sums the matrix's gradient:
    that is where Adam updates it (`learn`).
    """
    L, E, H, V, B = dims
    params, grads = state[0], state[1]
    x_emb, resid, n1, heads, x_mid, n2, scales, qkv, attn, hidden, dlogits = trace
    dx, dn, dheads, dh, dqkv, dweights = scratch
    # logits = x @ lm_head.T
    wte_at, wpe_at, lm_head_at = embedding_starts(dims)
    dx[:] = 0.0
    matmul_add(dlogits, matrix(params, lm_head_at, V, E), dx)
    learn(dlogits, resid[L], state, lm_head_at, adam_args, update)
    for li in range(L - 1, -1, -1):
        qkv_at, wo_at, fc1_at, fc2_at = layer_starts(dims, li)
        # MLP: x = fc2 relu(fc1 rmsnorm(x_mid)) + x_mid; inactive units pass no gradient
        dh[:] = 0.0
        matmul_add(dx, matrix(params, fc2_at, E, 4 * E), dh)
        learn(dx, hidden[li], state, fc2_at, adam_args, update)
        units = hidden[li]
        for n in range(dh.shape[0]):
            for j in range(4 * E):
                if units[n, j] == 0.0:
                    dh[n, j] = 0.0
        dn[:] = 0.0
        matmul_add(dh, matrix(params, fc1_at, 4 * E, E), dn)
        learn(dh, n2[li], state, fc1_at, adam_args, update)
        rmsnorm_backward_add(dn, x_mid[li], scales[1 + L + li], dx)
        # attention: x_mid = wo heads + x_in
        dheads[:] = 0.0
        matmul_add(dx, matrix(params, wo_at, E, E), dheads)
        learn(dx, heads[li], state, wo_at, adam_args, update)
        dqkv[:] = 0.0
        start = 0
        for b in range(batch.shape[0]):
            n = positions(batch[b], B)
            rows, weights = slice(start, start + n), attn[li, start * H * B :]
            attention_backward(dims, qkv[li, rows], weights, dheads[rows], dqkv[rows], dweights)
            start += n
        dn[:] = 0.0
        matmul_add(dqkv, matrix(params, qkv_at, 3 * E, E), dn)
        learn(dqkv, n1[li], state, qkv_at, adam_args, update)
        rmsnorm_backward_add(dn, resid[li], scales[1 + li], dx)
    # x_emb = wte[token] + wpe[t], then rmsnorm: each row's gradient goes to its token's
    # row of wte and its position's row of wpe
    dn[:] = 0.0
    rmsnorm_backward_add(dx, x_emb, scales[0], dn)
    g_wte, g_wpe = matrix(grads, wte_at, V, E), matrix(grads, wpe_at, B, E)
    g_wte[:] = 0.0
    g_wpe[:] = 0.0
    start = 0
    for b in range(batch.shape[0]):
        n = positions(batch[b], B)
        for t in range(n):
            for c in range(E):
                g_wte[batch[b, t], c] += dn[start + t, c]
                g_wpe[t, c] += dn[start + t, c]
        start += n
    if update:  # wte and wpe are adjacent
        size = (V + B) * E
        params, m, v = state[0], state[2], state[3]
        adam(params[:size], grads[:size], m[:size], v[:size], adam_args)


@compiled
def step(state, work, dims, batch, adam_args, update):
    """Mean cross-entropy over every target token of `batch` (one name per row, padded
    with PAD); its gradient goes into the gradient buffer, and with `update` Adam
    updates the weights."""
    V, B = dims[3], dims[4]
    rows = 0
    for b in range(batch.shape[0]):
        rows += positions(batch[b], B)
    trace, scratch, _ = carve(work, dims, rows)
    start = 0
    for b in range(batch.shape[0]):
        n = positions(batch[b], B)
        forward(state[0], dims, batch[b], start, 0, n, trace)
        start += n
    probs = trace[-1]
    softmax_rows(probs)
    inv_count = 1.0 / rows
    loss = 0.0
    start = 0
    for b in range(batch.shape[0]):
        n = positions(batch[b], B)
        for t in range(n):
            target = batch[b, t + 1]
            loss -= math.log(probs[start + t, target])
            # d(mean cross-entropy)/d(logits) = (probs - onehot) / count
            probs[start + t, target] -= 1.0
        start += n
    for n in range(rows):
        for i in range(V):
            probs[n, i] *= inv_count
    backward(state, dims, batch, trace, scratch, adam_args, update)
    return loss * inv_count


@compiled
def train_step(state, work, dims, batch, adam_args):
    """One step of training, one call from Python; returns the loss."""
    return step(state, work, dims, batch, adam_args, True)


@compiled
def train_name(state, work, dims, name, adam_args):
    """`train_step` on a batch of one name."""
    return step(state, work, dims, name.reshape((1, name.size)), adam_args, True)


@compiled
def loss_and_grad(state, work, dims, batch):
    """The loss, and its gradient in the gradient buffer; the weights stay as they are."""
    return step(state, work, dims, batch, (0.0, 0.0, 0.0, 0.0, 1.0, 1.0), False)


@compiled
def next_probs(params, dims, token, t, name, work, inv_temperature, probs):
    """Fills `probs` with the next token's probabilities at temperature 1 / inv_temperature;
    the positions before `t` are in the trace."""
    trace, _, _ = carve(work, dims, dims[4])
    name[t] = token
    forward(params, dims, name, 0, t, t + 1, trace)
    logits = trace[-1][t]
    for i in range(logits.size):
        logits[i] *= inv_temperature
    softmax(logits, probs)


# ---------------------------------------------------------------------------
# the model


class Model(ArrayModel):
    """microgpt compiled: flat float64 buffers, one work buffer, a few entry points."""

    def __init__(self, cfg, vocab_size, weights, adam=AdamConfig()):
        super().__init__(cfg, vocab_size, weights, adam)
        # the four flat buffers as the rows of one array: one argument for the compiled code
        self.state = np.stack([self.params, self.grads, self.m, self.v])
        self.params, self.grads, self.m, self.v = self.state
        self.dims = (cfg.n_layer, cfg.n_embd, cfg.n_head, vocab_size, cfg.block_size)
        self.work = np.empty(0)
        self.reserve(cfg.block_size)
        assert_layout(self.layout, self.dims)

    def reserve(self, rows):
        """A work buffer for batches of up to `rows` positions (it only grows)."""
        size = work_size(self.dims, rows)
        if size > self.work.size:
            self.work = np.empty(size)

    def batch(self, token_lists):
        """The names as the rows of one array, padded with PAD."""
        batch = np.full((len(token_lists), max(map(len, token_lists))), PAD, dtype=np.int64)
        for row, tokens in zip(batch, token_lists):
            row[: len(tokens)] = tokens
        self.reserve(sum(self.cfg.positions(len(tokens)) for tokens in token_lists))
        return batch

    def adam_args(self, step, num_steps):
        adam = self.adam
        lr_t = adam.lr_at(step, num_steps)
        return (lr_t, adam.beta1, adam.beta2, adam.eps, *adam.bias_corrections(step))

    def train_step(self, tokens, step, num_steps):
        """Forward, backward and Adam on one name; returns the loss as a float."""
        name = np.array(tokens, dtype=np.int64)
        return train_name(self.state, self.work, self.dims, name, self.adam_args(step, num_steps))

    def train_batch(self, token_lists, step, num_steps):
        """One step on the mean loss over every target token of a batch of names."""
        batch = self.batch(token_lists)  # first: it grows the work buffer if needed
        return train_step(self.state, self.work, self.dims, batch, self.adam_args(step, num_steps))

    def loss_and_grad(self, token_lists):
        """Mean cross-entropy over every target token; fills `grads` (flat like `params`)."""
        batch = self.batch(token_lists)
        return loss_and_grad(self.state, self.work, self.dims, batch)

    def sampler(self, temperature):
        """`next_probs(token_id, pos_id)`: the next token's probabilities, as floats."""
        work = np.empty(work_size(self.dims, self.cfg.block_size))
        name = np.zeros(self.cfg.block_size, dtype=np.int64)
        inv_temperature = temperature**-1
        probs = np.empty(self.vocab_size)

        def probs_after(token_id, pos_id):
            args = (token_id, pos_id, name, work, inv_temperature, probs)
            next_probs(self.params, self.dims, *args)
            return probs.tolist()

        return probs_after


def assert_layout(layout, dims):
    """The compiled code finds each matrix where the flat layout puts it."""
    found = dict(zip(("wte", "wpe", "lm_head"), embedding_starts(dims)))
    for li in range(dims[0]):
        names = ("attn_wq", "attn_wo", "mlp_fc1", "mlp_fc2")
        found.update(zip((f"layer{li}.{name}" for name in names), layer_starts(dims, li)))
    expected = {name: at for name, at in layout.offsets.items() if name in found}
    if found != expected:
        raise AssertionError(f"stage jit reads the weights at {found}, not {expected}")
