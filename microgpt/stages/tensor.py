"""Stage `tensor`: a contiguous numpy core (float64), the whole name per step.

`flat` still pays the interpreter for every number. Here a step is a fixed number of
numpy calls on whole arrays (chapter 14 counts them): every position goes through
each matrix in one product, and attention sees all positions at once through a
causal mask, which gives the same
numbers as the baseline's growing key/value cache (a masked score is exp(-inf) = 0).
The backward pass is written out by hand and Adam runs in place on one flat buffer of
which every weight matrix is a view, so the update is 14 calls.

Why it is faster: the per-number work moves from the interpreter into compiled loops,
and the number of Python-level calls per step no longer grows with the name. What is
left is the fixed cost of each call (the arrays are tiny) and Adam's passes over
every parameter. numpy reduces a short last axis slowly, so sums over rows are
products with a column of ones and dot products per row use `np.vecdot`. Results
agree with the baseline to rounding (BLAS sums in another order).

The same code trains on a batch of names (`train_batch`; the batched algorithm is
defined in `microgpt.train.train`), padded to the longest one: padding comes after
every real position, so the causal mask keeps it out of the real positions and a zero
weight keeps it out of the loss.
"""

from functools import lru_cache, partial

from ..config import AdamConfig
from ..memory import ONE_HOT_TABLE_MAX
from ._arrays import ArrayModel, blas_threads, np, threads_for


class Model(ArrayModel):
    """microgpt on numpy arrays: whole-sequence forward, hand-written backward."""

    def __init__(self, cfg, vocab_size, weights, adam=AdamConfig()):
        super().__init__(cfg, vocab_size, weights, adam)
        self.scratch = np.zeros((2, self.params.size))  # Adam's temporaries, reused
        self.w = self._views(self.params)
        self.g = self._views(self.grads)
        self.layer_w = self.layer_weights(self.w)
        self.layer_g = self.layer_weights(self.g)
        self.mask = np.zeros((0, 0))  # the largest causal mask so far; smaller ones are views
        # row i: the one-hot vector of token i; a large vocabulary builds them as needed
        self.eye = np.eye(vocab_size) if vocab_size <= ONE_HOT_TABLE_MAX else None

    def _views(self, buf):
        """Each matrix as a view into `buf`; wq, wk, wv adjacent form one qkv matrix."""
        cfg, E = self.cfg, self.cfg.n_embd
        offsets, views = self.layout.offsets, {}
        for name, rows, cols in self.layout.shapes:
            views[name] = buf[offsets[name] : offsets[name] + rows * cols].reshape(rows, cols)
        for li in range(cfg.n_layer):
            start = offsets[f"layer{li}.attn_wq"]
            views[f"layer{li}.qkv"] = buf[start : start + 3 * E * E].reshape(3 * E, E)
        return views

    def causal_mask(self, T):
        """(T, T) with -inf above the diagonal: position t sees positions 0..t."""
        if T > len(self.mask):
            self.mask = np.triu(np.full((T, T), -np.inf), k=1)
        return self.mask[:T, :T]

    def one_hot(self, ids):
        """(..., vocab_size) one-hot rows of an array of token ids."""
        if self.eye is not None:
            return self.eye.take(ids, 0)
        rows = np.zeros((*ids.shape, self.vocab_size))
        np.put_along_axis(rows, ids[..., None], 1.0, axis=-1)
        return rows

    # -- forward ------------------------------------------------------------

    def layer_weights(self, views):
        """Per layer (qkv, wo, fc1, fc2) from a dict of views, looked up once."""
        return [
            tuple(views[f"layer{li}.{name}"] for name in ("qkv", "attn_wo", "mlp_fc1", "mlp_fc2"))
            for li in range(self.cfg.n_layer)
        ]

    def forward(self, ids):
        """Logits (B*T, V) for a (B, T) array of token ids, and what backward needs."""
        cfg = self.cfg
        E, H, D = cfg.n_embd, cfg.n_head, cfg.head_dim
        B, T = ids.shape
        inv_n = E**-1
        x_emb = (self.w["wte"].take(ids, 0) + self.w["wpe"][:T]).reshape(B * T, E)
        x, s_emb = rmsnorm(x_emb, inv_n)
        x_emb_normed = x
        layers = []
        for qkv_w, wo, fc1, fc2 in self.layer_w:
            x_in = x
            n1, s1 = rmsnorm(x, inv_n)
            q, k, v = (n1 @ qkv_w.T).reshape(B, T, 3, H, D).transpose(2, 0, 3, 1, 4)
            att = q @ k.swapaxes(-1, -2)
            att *= (D**0.5) ** -1
            att += self.causal_mask(T)
            softmax_(att, max_axes=(-2, -1))  # scores are small: one max per head
            heads = np.empty((B, T, H, D))
            np.matmul(att, v, out=heads.swapaxes(1, 2))
            heads = heads.reshape(B * T, E)
            x_mid = heads @ wo.T
            x_mid += x_in
            n2, s2 = rmsnorm(x_mid, inv_n)
            hidden = n2 @ fc1.T
            np.maximum(hidden, 0.0, out=hidden)  # ReLU; its gradient passes where hidden > 0
            x = hidden @ fc2.T
            x += x_mid
            layers.append((n1, s1, q, k, v, att, heads, n2, s2, hidden))
        logits = x @ self.w["lm_head"].T
        return logits, (x_emb_normed, s_emb, layers, x)

    # -- backward -----------------------------------------------------------

    def train_step(self, tokens, step, num_steps):
        """Forward, backward and one Adam update on one name; returns the loss."""
        return self.train_batch([tokens], step, num_steps)

    def train_batch(self, token_lists, step, num_steps):
        """One step on the mean loss over every target token of a batch of names."""
        rows = len(token_lists) * min(self.cfg.block_size, max(map(len, token_lists)))
        blas_threads.use(threads_for(rows, self.cfg.n_embd))
        with quiet():  # an overflow becomes a non-finite loss, reported by the training loop
            loss = self.loss_and_grad(token_lists)
        self.adam_step(step, num_steps)
        return loss

    def padded(self, token_lists):
        """(ids (B, T + 1), T, which of the B * T positions are real, 1 / their number,
        each position's weight in the mean loss): the batch as `loss_and_grad` reads it."""
        B = len(token_lists)
        lengths = [self.cfg.positions(len(tokens)) for tokens in token_lists]
        T = max(lengths)
        if B == 1:
            padded = np.array(token_lists[:1])[:, : T + 1]
            real = slice(None)  # every position is a real one
            weight = inv_count = 1 / T
        else:
            padded = np.zeros((B, T + 1), dtype=np.int64)
            for b, tokens in enumerate(token_lists):
                padded[b, : lengths[b] + 1] = tokens[: lengths[b] + 1]
            real = (np.arange(T) < np.array(lengths)[:, None]).ravel()
            inv_count = 1 / sum(lengths)
            weight = (real * inv_count)[:, None]  # zero on padding
        return padded, T, real, inv_count, weight

    def batch_loss(self, token_lists):
        """The mean cross-entropy over every target token of a batch, forward only: what
        `loss_and_grad` returns, without a gradient (the held-out loss)."""
        padded, T, real, inv_count, _ = self.padded(token_lists)
        with quiet():
            logits, _ = self.forward(padded[:, :T])
            softmax_(logits)
            probs = np.take_along_axis(logits, padded[:, 1:].reshape(-1, 1), axis=1)
            return -float(np.add.reduce(np.log(probs.ravel()[real]))) * inv_count

    def loss_and_grad(self, token_lists):
        """Mean cross-entropy over every target token; fills `grads` (flat like `params`)."""
        cfg = self.cfg
        E, H, D = cfg.n_embd, cfg.n_head, cfg.head_dim
        B = len(token_lists)
        inv_n = E**-1
        padded, T, real, inv_count, weight = self.padded(token_lists)
        # one-hot rows of every token: the inputs' for the embedding, the targets' for the loss
        onehots = self.one_hot(padded)
        inputs = onehots[:, :T].reshape(B * T, -1)
        targets = onehots[:, 1:].reshape(B * T, -1)
        logits, (x_emb_normed, s_emb, layers, x_out) = self.forward(padded[:, :T])

        probs = logits
        softmax_(probs)
        loss = -float(np.add.reduce(np.log(row_dot(probs, targets)[real]))) * inv_count

        # d(mean cross-entropy)/d(logits) = (probs - onehot) / count, zero on padding
        probs -= targets
        probs *= weight
        dlogits = probs
        g = self.g
        np.matmul(dlogits.T, x_out, out=g["lm_head"])
        dx = dlogits @ self.w["lm_head"]
        for li in reversed(range(cfg.n_layer)):
            qkv_w, wo, fc1, fc2 = self.layer_w[li]
            g_qkv, g_wo, g_fc1, g_fc2 = self.layer_g[li]
            n1, s1, q, k, v, att, heads, n2, s2, hidden = layers[li]
            # MLP: x = fc2 relu(fc1 rmsnorm(x_mid)) + x_mid
            np.matmul(dx.T, hidden, out=g_fc2)
            dhidden = dx @ fc2
            dhidden *= hidden > 0
            np.matmul(dhidden.T, n2, out=g_fc1)
            dx += rmsnorm_backward(dhidden @ fc1, n2, s2, inv_n)
            # attention: x_mid = wo heads + x_in
            np.matmul(dx.T, heads, out=g_wo)
            dheads = (dx @ wo).reshape(B, T, H, D).swapaxes(1, 2)
            dqkv = np.empty((B, T, 3, H, D))
            dq, dk, dv = dqkv.transpose(2, 0, 3, 1, 4)
            np.matmul(att.swapaxes(-1, -2), dheads, out=dv)
            datt = dheads @ v.swapaxes(-1, -2)
            # softmax backward (masked entries have att = 0), then the 1/sqrt(d) scale
            datt -= row_dot(att, datt)[..., None]
            datt *= att
            datt *= (D**0.5) ** -1
            np.matmul(datt, k, out=dq)
            np.matmul(datt.swapaxes(-1, -2), q, out=dk)
            dqkv = dqkv.reshape(B * T, 3 * E)
            np.matmul(dqkv.T, n1, out=g_qkv)
            dx += rmsnorm_backward(dqkv @ qkv_w, n1, s1, inv_n)
        dx = rmsnorm_backward(dx, x_emb_normed, s_emb, inv_n)
        # x_emb = wte[ids] + wpe[:T]: a token's row gathers the gradients of its positions
        # (one product with the inputs' one-hot rows), a position's row those of the batch
        np.matmul(inputs.T, dx, out=g["wte"])
        g["wpe"][T:] = 0.0
        np.add.reduce(dx.reshape(B, T, E), axis=0, out=g["wpe"][:T])
        return loss

    def adam_step(self, step, num_steps):
        """The baseline's Adam, formula for formula, in place over the flat buffers."""
        cfg = self.adam
        g, m, v, p = self.grads, self.m, self.v, self.params
        tmp, denom = self.scratch
        lr_t = cfg.lr_at(step, num_steps)
        bias1, bias2 = cfg.bias_corrections(step)
        m *= cfg.beta1
        m += np.multiply(g, 1 - cfg.beta1, out=tmp)
        v *= cfg.beta2
        np.multiply(g, g, out=tmp)
        tmp *= 1 - cfg.beta2
        v += tmp
        np.divide(v, bias2, out=denom)
        np.sqrt(denom, out=denom)
        denom += cfg.eps
        np.divide(m, bias1, out=tmp)
        tmp *= lr_t
        tmp /= denom
        p -= tmp

    # -- sampling -----------------------------------------------------------

    def sampler(self, temperature):
        """`next_probs(token_id, pos_id)`: the whole prefix again, the last row's softmax."""
        inv_temperature = temperature**-1
        ids = []

        def next_probs(token_id, pos_id):
            ids.append(token_id)
            with quiet():  # extreme weights give non-finite probabilities, which sampling reports
                logits, _ = self.forward(np.array([ids]))
                last = logits[-1] * inv_temperature
                softmax_(last)
            return last.tolist()

        return next_probs


# ---------------------------------------------------------------------------
# kernels


def quiet():
    """Overflow and NaN pass silently: the training loop and sampling report them."""
    return np.errstate(all="ignore")


# np.vecdot (numpy >= 2) is one call for a dot product per row; einsum does it before
row_dot = getattr(np, "vecdot", None) or partial(np.einsum, "...i,...i->...")


@lru_cache
def ones_column(n):
    return np.ones((n, 1))


def softmax_(x, max_axes=-1):
    """Softmax over the last axis, in place, the baseline's way: exp(x - max) / sum.

    Any constant per row gives the same softmax; `max_axes=(-2, -1)` takes one per
    matrix, a reduction numpy does far faster than one per short row. Sums over a short
    last axis are faster as a product with a column of ones than as a reduction.
    """
    x -= np.maximum.reduce(x, axis=max_axes, keepdims=True)
    np.exp(x, out=x)
    x *= (x @ ones_column(x.shape[-1])) ** -1


def rmsnorm(x, inv_n):
    """(y, scale): rows of x rescaled to unit root-mean-square, with the baseline's arithmetic."""
    scale = ((row_dot(x, x) * inv_n + 1e-5) ** -0.5)[:, None]
    return x * scale, scale


def rmsnorm_backward(dy, y, scale, inv_n):
    """Gradient of y = x * scale, scale = (mean(x^2) + eps)^-1/2, written with y."""
    d = row_dot(dy, y)
    d *= inv_n
    dx = dy - d[:, None] * y
    dx *= scale
    return dx
