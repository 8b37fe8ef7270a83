"""Stage `torch`: the same model in PyTorch (float64), with the baseline's Adam.

A side variant, not a pass: PyTorch's autograd computes the gradients, so this stage
is the oracle the hand-written backward passes of `flat` and `tensor` are checked
against (`loss_and_grads`), and the way to train larger configurations. The forward
pass takes the whole name at once with a causal mask, like `tensor`; Adam is written
out with exactly the baseline's formula rather than `torch.optim.Adam`, whose update
differs in rounding (it folds the bias corrections differently).
"""

import math

import torch

from ..config import AdamConfig
from ..model import param_shapes


class Model:
    """microgpt as float64 torch tensors; gradients by autograd, Adam by hand."""

    def __init__(self, cfg, vocab_size, weights, adam=AdamConfig()):
        self.cfg = cfg
        self.vocab_size = vocab_size
        self.adam = adam
        self.names = [name for name, _, _ in param_shapes(cfg, vocab_size)]
        self.params = {
            name: torch.tensor(weights[name], dtype=torch.float64, requires_grad=True)
            for name in self.names
        }
        self.m = {name: torch.zeros_like(p) for name, p in self.params.items()}
        self.v = {name: torch.zeros_like(p) for name, p in self.params.items()}
        self.masks = {}  # sequence length -> additive causal mask
        if cfg.n_embd <= 64:
            # matrices this small gain nothing from intra-op threads and lose to their
            # hand-offs: 150 ms/step on 2 threads against 3 ms on one, measured on 2 cores
            torch.set_num_threads(1)

    @property
    def num_params(self):
        return sum(p.numel() for p in self.params.values())

    def weights(self):
        """The parameters keyed like `init_weights`, as lists of rows of floats."""
        return {name: p.detach().tolist() for name, p in self.params.items()}

    def causal_mask(self, T):
        if T not in self.masks:
            self.masks[T] = torch.full((T, T), -math.inf, dtype=torch.float64).triu(1)
        return self.masks[T]

    def forward(self, ids):
        """Logits (T, V) for a list of T token ids, every position at once."""
        cfg, p = self.cfg, self.params
        T, H, D = len(ids), cfg.n_head, cfg.head_dim
        x = rmsnorm(p["wte"][ids] + p["wpe"][:T])
        for li in range(cfg.n_layer):
            x_in = x
            x = rmsnorm(x)
            q, k, v = (x @ p[f"layer{li}.attn_{w}"].T for w in ("wq", "wk", "wv"))
            q, k, v = (t.view(T, H, D).transpose(0, 1) for t in (q, k, v))
            att = (q @ k.transpose(1, 2)) * (D**0.5) ** -1 + self.causal_mask(T)
            heads = (torch.softmax(att, dim=-1) @ v).transpose(0, 1).reshape(T, cfg.n_embd)
            x = heads @ p[f"layer{li}.attn_wo"].T + x_in
            x_mid = x
            x = torch.relu(rmsnorm(x) @ p[f"layer{li}.mlp_fc1"].T)
            x = x @ p[f"layer{li}.mlp_fc2"].T + x_mid
        return x @ p["lm_head"].T

    def loss(self, tokens):
        """Mean cross-entropy of predicting each next token, as a torch scalar."""
        n = min(self.cfg.block_size, len(tokens) - 1)
        logits = self.forward(tokens[:n])
        return torch.nn.functional.cross_entropy(logits, torch.tensor(tokens[1 : n + 1]))

    def train_step(self, tokens, step, num_steps):
        """Forward, backward and one Adam update; returns the loss as a float."""
        loss = self.loss(tokens)
        loss.backward()
        self.adam_step(step, num_steps)
        return loss.item()

    @torch.no_grad()
    def adam_step(self, step, num_steps):
        """The baseline's Adam, formula for formula, then the gradients are cleared."""
        cfg = self.adam
        lr_t = cfg.lr * (1 - step / num_steps)
        for name, p in self.params.items():
            g, m, v = p.grad, self.m[name], self.v[name]
            m.mul_(cfg.beta1).add_((1 - cfg.beta1) * g)
            v.mul_(cfg.beta2).add_((1 - cfg.beta2) * (g * g))
            m_hat = m / (1 - cfg.beta1 ** (step + 1))
            v_hat = v / (1 - cfg.beta2 ** (step + 1))
            p.sub_(lr_t * m_hat / (v_hat.sqrt() + cfg.eps))
            p.grad = None

    @torch.no_grad()
    def generate(self, rng, temperature, bos):
        """Token ids of one new sequence, drawing from `rng` exactly as the baseline."""
        ids = [bos]
        choices = range(self.vocab_size)
        for _ in range(self.cfg.block_size):
            logits = self.forward(ids)[-1] * temperature**-1
            probs = torch.softmax(logits, dim=-1).tolist()
            token_id = rng.choices(choices, weights=probs)[0]
            if token_id == bos:
                break
            ids.append(token_id)
        return ids[1:]


def rmsnorm(x):
    """Rescale each row of `x` to unit root-mean-square (no learned gain)."""
    return x * ((x * x).mean(dim=-1, keepdim=True) + 1e-5) ** -0.5


def loss_and_grads(cfg, vocab_size, weights, tokens):
    """(loss, gradients keyed like `weights`) for one name: the gradient oracle for tests."""
    model = Model(cfg, vocab_size, weights)
    loss = model.loss(tokens)
    loss.backward()
    return loss.item(), {name: p.grad.tolist() for name, p in model.params.items()}
