"""Stage `tensor`: a contiguous numpy core (float64), the whole name per step.

`flat` still runs the model one position at a time, so its loops are as long as the
name and its cost is dominated by the Python interpreter. Here a step is a few dozen
numpy calls on whole arrays: every position goes through each matrix in one product,
and attention sees all positions at once through a causal mask, which gives the same
numbers as the baseline's growing key/value cache (a masked score is exp(-inf) = 0).
The backward pass is written out by hand and Adam runs in place on one flat buffer of
which every weight matrix is a view, so the update is a handful of calls too.

Why it is faster: the per-number work moves from the interpreter into compiled loops,
and the number of Python-level calls per step no longer grows with the model.
Results agree with the baseline to rounding (BLAS and numpy sum in another order).

The same code trains on a batch of names padded to the longest one (`train_batch`):
padding comes after every real position, so the causal mask keeps it out of the real
positions and a zero weight keeps it out of the loss. `train_batched` is its loop.
"""

import math

import numpy as np

from ..config import AdamConfig
from ..model import param_shapes


class Model:
    """microgpt on numpy arrays: whole-sequence forward, hand-written backward."""

    def __init__(self, cfg, vocab_size, weights, adam=AdamConfig()):
        self.cfg = cfg
        self.vocab_size = vocab_size
        self.adam = adam
        self.shapes = param_shapes(cfg, vocab_size)
        flat = [v for name, _, _ in self.shapes for row in weights[name] for v in row]
        self.params = np.array(flat, dtype=np.float64)
        self.grads = np.zeros_like(self.params)
        self.m = np.zeros_like(self.params)  # Adam's running mean of gradients
        self.v = np.zeros_like(self.params)  # Adam's running mean of squared gradients
        self.scratch = np.zeros((2, self.params.size))  # Adam's temporaries, reused
        self.w = self._views(self.params)
        self.g = self._views(self.grads)
        self.masks = {}  # sequence length -> additive causal mask
        # a one-hot row per token id, then per position: x0 = onehots @ [wte; wpe], and
        # the embedding gradient is one product back
        self.onehot = np.eye(vocab_size + cfg.block_size)

    def _views(self, buf):
        """Each matrix as a view into `buf`; wq, wk, wv adjacent form one qkv matrix."""
        cfg, E = self.cfg, self.cfg.n_embd
        views, start = {}, 0
        for name, rows, cols in self.shapes:
            views[name] = buf[start : start + rows * cols].reshape(rows, cols)
            start += rows * cols
        # wte and wpe are adjacent: one embedding table for tokens and positions
        views["emb"] = buf[: (self.vocab_size + cfg.block_size) * E].reshape(-1, E)
        for li in range(cfg.n_layer):
            wq = views[f"layer{li}.attn_wq"]
            start = wq.__array_interface__["data"][0] - buf.__array_interface__["data"][0]
            start //= buf.itemsize
            views[f"layer{li}.qkv"] = buf[start : start + 3 * E * E].reshape(3 * E, E)
        return views

    @property
    def num_params(self):
        return self.params.size

    def weights(self):
        """The parameters keyed like `init_weights`, as lists of rows of floats."""
        return {name: self.w[name].tolist() for name, _, _ in self.shapes}

    def causal_mask(self, T):
        """(T, T) with -inf above the diagonal: position t sees positions 0..t."""
        if T not in self.masks:
            self.masks[T] = np.triu(np.full((T, T), -np.inf), k=1)
        return self.masks[T]

    # -- forward ------------------------------------------------------------

    def forward(self, ids):
        """Logits (B*T, V) for a (B, T) array of token ids, and what backward needs."""
        cfg, w = self.cfg, self.w
        E, H, D = cfg.n_embd, cfg.n_head, cfg.head_dim
        B, T = ids.shape
        inv_n = E**-1
        onehots = self.onehot[ids]
        onehots += self.onehot[self.vocab_size : self.vocab_size + T]
        onehots = onehots.reshape(B * T, -1)
        x_emb = onehots @ w["emb"]
        x, s_emb = rmsnorm(x_emb, inv_n)
        layers = []
        for li in range(cfg.n_layer):
            x_in = x
            n1, s1 = rmsnorm(x, inv_n)
            qkv = n1 @ w[f"layer{li}.qkv"].T
            q, k, v = qkv.reshape(B, T, 3, H, D).transpose(2, 0, 3, 1, 4)
            att = q @ k.transpose(0, 1, 3, 2)
            att *= (D**0.5) ** -1
            att += self.causal_mask(T)
            softmax_(att)
            heads = (att @ v).transpose(0, 2, 1, 3).reshape(B * T, E)
            x_mid = heads @ w[f"layer{li}.attn_wo"].T
            x_mid += x_in
            n2, s2 = rmsnorm(x_mid, inv_n)
            hidden = n2 @ w[f"layer{li}.mlp_fc1"].T
            active = hidden > 0
            hidden *= active  # ReLU in place
            x = hidden @ w[f"layer{li}.mlp_fc2"].T
            x += x_mid
            layers.append((x_in, n1, s1, q, k, v, att, heads, x_mid, n2, s2, hidden, active))
        logits = x @ w["lm_head"].T
        return logits, (onehots, x_emb, s_emb, layers, x)

    # -- backward -----------------------------------------------------------

    def train_step(self, tokens, step, num_steps):
        """Forward, backward and one Adam update on one name; returns the loss."""
        return self.train_batch([tokens], step, num_steps)

    def train_batch(self, token_lists, step, num_steps):
        """One step on the mean loss over every target token of a batch of names."""
        cfg, w, g = self.cfg, self.w, self.g
        E, H, D = cfg.n_embd, cfg.n_head, cfg.head_dim
        B = len(token_lists)
        lengths = [min(cfg.block_size, len(tokens) - 1) for tokens in token_lists]
        T = max(lengths)
        inv_n = E**-1
        if B == 1:
            ids = np.array([token_lists[0][: T + 1]])
            targets = ids[0, 1:]
            ids = ids[:, :T]
            rows = np.arange(T)
        else:
            padded = np.zeros((B, T + 1), dtype=np.int64)
            for b, tokens in enumerate(token_lists):
                padded[b, : lengths[b] + 1] = tokens[: lengths[b] + 1]
            ids = padded[:, :T]
            valid = np.arange(T) < np.array(lengths)[:, None]
            rows = np.flatnonzero(valid)
            targets = padded[:, 1:].ravel()[rows]
        logits, (onehots, x_emb, s_emb, layers, x_out) = self.forward(ids)

        probs = logits
        softmax_(probs)
        picked = probs[rows, targets]
        inv_count = 1 / len(rows)
        loss = -np.log(picked).sum() * inv_count

        # d(mean cross-entropy)/d(logits) = (probs - onehot) / count, zero on padding
        if B == 1:
            dlogits = probs * inv_count
        else:
            dlogits = np.zeros_like(probs)
            dlogits[rows] = probs[rows] * inv_count
        dlogits[rows, targets] = (picked - 1) * inv_count
        np.matmul(dlogits.T, x_out, out=g["lm_head"])
        dx = dlogits @ w["lm_head"]
        for li in reversed(range(cfg.n_layer)):
            (x_in, n1, s1, q, k, v, att, heads, x_mid, n2, s2, hidden, active) = layers[li]
            # MLP: x = fc2 relu(fc1 rmsnorm(x_mid)) + x_mid
            np.matmul(dx.T, hidden, out=g[f"layer{li}.mlp_fc2"])
            dhidden = dx @ w[f"layer{li}.mlp_fc2"]
            dhidden *= active
            np.matmul(dhidden.T, n2, out=g[f"layer{li}.mlp_fc1"])
            dx += rmsnorm_backward(dhidden @ w[f"layer{li}.mlp_fc1"], x_mid, s2, inv_n)
            # attention: x_mid = wo heads + x_in
            np.matmul(dx.T, heads, out=g[f"layer{li}.attn_wo"])
            dheads = (dx @ w[f"layer{li}.attn_wo"]).reshape(B, T, H, D).transpose(0, 2, 1, 3)
            dqkv = np.empty((B, T, 3, H, D))
            dq, dk, dv = dqkv.transpose(2, 0, 3, 1, 4)
            np.matmul(att.transpose(0, 1, 3, 2), dheads, out=dv)
            datt = dheads @ v.transpose(0, 1, 3, 2)
            # softmax backward (masked entries have att = 0), then the 1/sqrt(d) scale
            datt -= (att * datt).sum(-1, keepdims=True)
            datt *= att
            datt *= (D**0.5) ** -1
            np.matmul(datt, k, out=dq)
            np.matmul(datt.transpose(0, 1, 3, 2), q, out=dk)
            dqkv = dqkv.reshape(-1, 3 * E)
            np.matmul(dqkv.T, n1, out=g[f"layer{li}.qkv"])
            dx += rmsnorm_backward(dqkv @ w[f"layer{li}.qkv"], x_in, s1, inv_n)
        dx = rmsnorm_backward(dx, x_emb, s_emb, inv_n)
        np.matmul(onehots.T, dx, out=g["emb"])
        self.adam_step(step, num_steps)
        return float(loss)

    def adam_step(self, step, num_steps):
        """The baseline's Adam, formula for formula, in place over the flat buffers."""
        cfg = self.adam
        g, m, v, p = self.grads, self.m, self.v, self.params
        tmp, denom = self.scratch
        lr_t = cfg.lr * (1 - step / num_steps)
        m *= cfg.beta1
        m += np.multiply(g, 1 - cfg.beta1, out=tmp)
        v *= cfg.beta2
        np.multiply(g, g, out=tmp)
        tmp *= 1 - cfg.beta2
        v += tmp
        np.divide(v, 1 - cfg.beta2 ** (step + 1), out=denom)
        np.sqrt(denom, out=denom)
        denom += cfg.eps
        np.divide(m, 1 - cfg.beta1 ** (step + 1), out=tmp)
        tmp *= lr_t
        tmp /= denom
        p -= tmp

    # -- sampling -----------------------------------------------------------

    def generate(self, rng, temperature, bos):
        """Token ids of one new sequence, drawing from `rng` exactly as the baseline."""
        inv_temperature = temperature**-1
        ids = [bos]
        choices = range(self.vocab_size)
        for _ in range(self.cfg.block_size):
            logits, _ = self.forward(np.array([ids]))
            last = logits[-1] * inv_temperature
            softmax_(last)
            token_id = rng.choices(choices, weights=last.tolist())[0]
            if token_id == bos:
                break
            ids.append(token_id)
        return ids[1:]


# ---------------------------------------------------------------------------
# kernels


def softmax_(x):
    """Softmax over the last axis, in place, the baseline's way: exp(x - max) / sum."""
    x -= np.maximum.reduce(x, axis=-1, keepdims=True)
    np.exp(x, out=x)
    x *= np.add.reduce(x, axis=-1, keepdims=True) ** -1


def rmsnorm(x, inv_n):
    """(normalised rows of x, their scales (rows, 1)) with the baseline's arithmetic."""
    scale = (np.add.reduce(x * x, axis=-1, keepdims=True) * inv_n + 1e-5) ** -0.5
    return x * scale, scale


def rmsnorm_backward(dy, x, scale, inv_n):
    """Gradient of rmsnorm at `x` (scale = (mean(x^2) + eps)^-1/2)."""
    c = np.add.reduce(dy * x, axis=-1, keepdims=True) * (scale**3 * -inv_n)
    dx = dy * scale
    dx += c * x
    return dx


def train_batched(model, docs, tokenizer, num_steps, batch_size):
    """Train on `batch_size` names per step, taken in order; yields (step, loss)."""
    for step in range(num_steps):
        start = step * batch_size
        batch = [tokenizer.encode(docs[(start + i) % len(docs)]) for i in range(batch_size)]
        loss = model.train_batch(batch, step, num_steps)
        if not math.isfinite(loss):
            from ..train import TrainingDiverged

            raise TrainingDiverged(
                f"loss is {loss} at step {step + 1}; training stopped (try a smaller batch)"
            )
        yield step, loss
