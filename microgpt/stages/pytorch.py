"""Stage `torch`: the same model in PyTorch, on any device, in three precisions, on batches.

(The module is `pytorch`, not `torch`, so that it never shadows PyTorch.)

A side variant, not a pass: autograd computes the gradients, so in float64 on the CPU
this stage is the oracle the hand-written backward passes of `flat` and `tensor` are
checked against (`loss_and_grads`). It is also the model on the engine readers use
next: `device` (`auto` picks CUDA when present), `dtype` (`float64`, `float32`, or
`bfloat16`: float32 weights and Adam with the products in bfloat16 under autocast, as
mixed-precision training does it), `compile` (`torch.compile`), and data parallelism
(`distribute`, which `python -m microgpt` calls under torchrun).

A batch is `tensor`'s algorithm: B names padded to the longest, the causal mask keeping
padding out of the real positions and a target of -1 keeping it out of the loss, the
loss averaged over every real token. Adam is the baseline's formula, written out,
rather than `torch.optim.Adam`, whose update differs in rounding (it folds the bias
corrections differently).
"""

import os
import shutil
import sys

import torch

from ..config import AdamConfig
from ..model import param_shapes
from . import DEVICES, DTYPES, StageError

IGNORE = -1  # the target of a padded position: cross-entropy skips it


def own_threads():
    """PyTorch's CPU threads for a model wide enough to share its products: its own choice
    (the cores, or OMP_NUM_THREADS), except after `tensor`'s numpy, whose `_arrays` sets
    MKL_NUM_THREADS=1 for numpy's BLAS: PyTorch, loaded after, would take that for the
    user's and run one thread. Then a thread per core this process may run on."""
    arrays = sys.modules.get(f"{__package__}._arrays")
    if arrays is not None and not arrays.USER_SET:
        return arrays.cores()
    return torch.get_num_threads()


THREADS = own_threads()
threads_set = None  # the count `use_threads` last gave PyTorch


class UnavailableOption(StageError):
    """A device, dtype or compiler this machine or this PyTorch build does not have."""


def resolve_device(device):
    """The `torch.device` that `device` (one of `DEVICES`) names here, or `UnavailableOption`."""
    if device not in DEVICES:
        raise UnavailableOption(f"unknown device {device!r}; choose one of: {', '.join(DEVICES)}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        why = (
            f"PyTorch {torch.__version__} is a CPU build"
            if torch.version.cuda is None
            else "no CUDA device is visible"
        )
        raise UnavailableOption(
            f"device cuda is not available here ({why}); use --device cpu, "
            "or install a CUDA build of PyTorch on a machine with an NVIDIA GPU"
        )
    if device == "mps" and not torch.backends.mps.is_available():
        raise UnavailableOption(
            "device mps is not available here (it needs Apple silicon and macOS); use --device cpu"
        )
    return torch.device(device)


def check_options(device="auto", dtype="float64", compile=False):
    """The device these options run on; `UnavailableOption` (one line) when they cannot run.

    Called before any work, so that a run the machine cannot do fails at once.
    """
    where = resolve_device(device)
    if dtype not in DTYPES:
        raise UnavailableOption(f"unknown dtype {dtype!r}; choose one of: {', '.join(DTYPES)}")
    if dtype == "float64" and where.type == "mps":
        raise UnavailableOption("mps has no float64; use --dtype float32 or bfloat16 there")
    if dtype == "bfloat16" and where.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UnavailableOption(
            f"{torch.cuda.get_device_name()} has no bfloat16; use --dtype float32 or float64"
        )
    if compile and where.type == "cpu":
        # inductor writes C++ for the CPU and builds it with $CXX or g++ (clang++ on macOS)
        cxx = os.environ.get("CXX") or ("clang++" if sys.platform == "darwin" else "g++")
        if not shutil.which(cxx):
            raise UnavailableOption(
                f"--compile on the CPU needs a C++ compiler ({cxx} is not installed, or set "
                "CXX to one); install it or leave out --compile"
            )
    return where


class CompileFailed(StageError):
    """torch.compile could not build the model here; the message gives its first line."""


class Network(torch.nn.Module):
    """microgpt's weight matrices as parameters; the forward pass of a padded batch."""

    def __init__(self, cfg, vocab_size, weights, device, dtype):
        super().__init__()
        self.cfg = cfg
        self.names = [name for name, _, _ in param_shapes(cfg, vocab_size)]
        # a parameter's name cannot hold a dot: layer0.attn_wq is layer0_attn_wq here
        self.params = torch.nn.ParameterDict(
            {
                key(name): torch.tensor(weights[name], dtype=dtype, device=device)
                for name in self.names
            }
        )
        # each layer's matrices, looked up once (a plain list: the parameters are registered above)
        names = ("attn_wq", "attn_wk", "attn_wv", "attn_wo", "mlp_fc1", "mlp_fc2")
        self.layers = [tuple(self[f"layer{li}.{w}"] for w in names) for li in range(cfg.n_layer)]
        # -inf above the diagonal: position t sees positions 0..t (a plain attribute,
        # not a buffer, so that data parallelism has nothing to broadcast)
        T = cfg.block_size
        self.mask = torch.full((T, T), -torch.inf, dtype=dtype, device=device).triu(1)

    def __getitem__(self, name):
        return self.params[key(name)]

    def logits(self, ids):
        """Logits (B, T, V) for a (B, T) tensor of token ids, every position at once."""
        cfg = self.cfg
        B, T = ids.shape
        H, D = cfg.n_head, cfg.head_dim
        x = rmsnorm(self["wte"][ids] + self["wpe"][:T])
        for wq, wk, wv, wo, fc1, fc2 in self.layers:
            x_in = x
            x = rmsnorm(x)
            q, k, v = ((x @ w.T).view(B, T, H, D).transpose(1, 2) for w in (wq, wk, wv))
            att = (q @ k.transpose(-2, -1)) * (D**0.5) ** -1 + self.mask[:T, :T]
            heads = (torch.softmax(att, dim=-1) @ v).transpose(1, 2).reshape(B, T, cfg.n_embd)
            x = heads @ wo.T + x_in
            x_mid = x
            x = torch.relu(rmsnorm(x) @ fc1.T) @ fc2.T + x_mid
        return x @ self["lm_head"].T

    def forward(self, ids, targets):
        """The summed cross-entropy of every real target (padding's target is IGNORE)."""
        logits = self.logits(ids).flatten(0, 1)  # autocast computes the loss in float32
        return torch.nn.functional.cross_entropy(
            logits, targets.flatten(), ignore_index=IGNORE, reduction="sum"
        )


def key(name):
    return name.replace(".", "_")


class Model:
    """microgpt as torch tensors; gradients by autograd, Adam by hand, batches, any device."""

    memory_kind = "float64"  # see `microgpt.memory` (float32 and bfloat16 take less)

    def __init__(
        self,
        cfg,
        vocab_size,
        weights,
        adam=AdamConfig(),
        device="auto",
        dtype="float64",
        compile=False,
    ):
        self.cfg = cfg
        self.vocab_size = vocab_size
        self.adam = adam
        self.device = check_options(device, dtype, compile)
        self.dtype = dtype
        # bfloat16 is mixed precision: float32 weights and Adam, bfloat16 products
        self.weight_dtype = torch.float64 if dtype == "float64" else torch.float32
        self.net = Network(cfg, vocab_size, weights, self.device, self.weight_dtype)
        self.names = self.net.names
        self.params = [self.net[name] for name in self.names]
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.compiled = compile
        self.loss_module = torch.compile(self.net, dynamic=True) if compile else self.net
        self.rank, self.world_size = 0, 1
        # CPU threads: matrices this small gain nothing from intra-op threads and lose to
        # their hand-offs, many times over on a 2-core machine; larger ones use them all
        self.threads = 1 if cfg.n_embd <= 64 else THREADS

    @property
    def num_params(self):
        return sum(p.numel() for p in self.params)

    def weights(self):
        """The parameters keyed like `init_weights`, as lists of rows of floats."""
        return {
            name: p.detach().to("cpu", torch.float64).tolist()
            for name, p in zip(self.names, self.params)
        }

    def autocast(self):
        """bfloat16 products under autocast; a no-op context for float32 and float64."""
        return torch.autocast(self.device.type, torch.bfloat16, enabled=self.dtype == "bfloat16")

    def distribute(self, rank, world_size):
        """Train as process `rank` of `world_size`, gradients all-reduced by
        DistributedDataParallel (the process group must be started). Every process
        then gets the whole batch in `train_batch` and takes its own slice of it."""
        self.rank, self.world_size = rank, world_size
        cuda = self.device.type == "cuda"
        self.loss_module = torch.nn.parallel.DistributedDataParallel(
            self.loss_module, device_ids=[torch.cuda.current_device()] if cuda else None
        )

    def use_threads(self):
        """This model's CPU threads: the setting is the process's, and models may share one.

        Set through `torch.set_num_threads`, which sets OpenMP's count and MKL's:
        `torch.get_num_threads()` reads OpenMP's alone, so it is not asked.
        """
        global threads_set
        if self.device.type == "cpu" and threads_set != self.threads:
            torch.set_num_threads(self.threads)
            threads_set = self.threads

    def batch_tensors(self, token_lists):
        """(ids, targets) as (B, T) tensors: names padded to the longest, targets IGNORE there."""
        lengths = [self.cfg.positions(len(tokens)) for tokens in token_lists]
        T = max(lengths)
        ids = [tokens[:n] + [0] * (T - n) for tokens, n in zip(token_lists, lengths)]
        targets = [
            tokens[1 : n + 1] + [IGNORE] * (T - n) for tokens, n in zip(token_lists, lengths)
        ]
        return (torch.tensor(rows, device=self.device) for rows in (ids, targets))

    def loss(self, tokens):
        """Mean cross-entropy of predicting each next token of one name, as a torch scalar."""
        ids, targets = self.batch_tensors([tokens])
        with self.autocast():
            return self.net(ids, targets) / targets.numel()

    def train_step(self, tokens, step, num_steps):
        """Forward, backward and one Adam update on one name; returns the loss."""
        return self.train_batch([tokens], step, num_steps)

    def train_batch(self, token_lists, step, num_steps):
        """One step on the mean loss over every real target token of a batch of names.

        Data-parallel, this process computes only its slice of the batch (consecutive
        names), but divides by the real tokens of the WHOLE batch: processes' slices hold
        different numbers of tokens, so a mean of each process's mean would weigh a token
        of a short slice more than one of a long slice, and the run would no longer be
        the one-process run with the whole batch. DistributedDataParallel then averages
        the gradients (a sum divided by the number of processes), so the local loss is
        multiplied by that number first: the result is the sum of the slices' gradients,
        which is the gradient of the whole batch's mean loss.
        """
        self.use_threads()
        if len(token_lists) % self.world_size:
            raise ValueError(f"a batch of {len(token_lists)} names for {self.world_size} processes")
        count = sum(self.cfg.positions(len(tokens)) for tokens in token_lists)
        share = len(token_lists) // self.world_size
        ids, targets = self.batch_tensors(token_lists[self.rank * share : (self.rank + 1) * share])
        with self.autocast():
            total = self.loss_sum(ids, targets)
        (total * (self.world_size / count)).backward()
        total = total.detach()
        if self.world_size > 1:
            torch.distributed.all_reduce(total)  # the whole batch's summed loss, for the log
        self.adam_step(step, num_steps)
        return total.item() / count

    def loss_sum(self, ids, targets):
        """The summed loss of a batch through the compiled and distributed module, if so.
        torch.compile builds the model on its first call: a failure to build (no working
        C++ compiler) is one line."""
        if not self.compiled:
            return self.loss_module(ids, targets)
        try:
            return self.loss_module(ids, targets)
        except torch._dynamo.exc.BackendCompilerFailed as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise CompileFailed(
                f"torch.compile could not build the model here ({first[:200]}); "
                "run without --compile"
            ) from None

    @torch.no_grad()
    def batch_loss(self, token_lists):
        """The mean cross-entropy over every real target token of a batch, forward only
        (the held-out loss, `microgpt.evaluate`): the plain module, whatever trains."""
        self.use_threads()
        ids, targets = self.batch_tensors(token_lists)
        with self.autocast():
            total = self.net(ids, targets)
        return total.item() / sum(self.cfg.positions(len(tokens)) for tokens in token_lists)

    @torch.no_grad()
    def adam_step(self, step, num_steps):
        """The baseline's Adam, formula for formula, on every matrix at once; then the
        gradients are cleared."""
        cfg = self.adam
        lr_t = cfg.lr_at(step, num_steps)
        bias1, bias2 = cfg.bias_corrections(step)
        grads = [p.grad for p in self.params]
        torch._foreach_mul_(self.m, cfg.beta1)
        torch._foreach_add_(self.m, torch._foreach_mul(grads, 1 - cfg.beta1))
        torch._foreach_mul_(self.v, cfg.beta2)
        torch._foreach_add_(
            self.v, torch._foreach_mul(torch._foreach_mul(grads, grads), 1 - cfg.beta2)
        )
        denom = torch._foreach_div(self.v, bias2)
        torch._foreach_sqrt_(denom)
        torch._foreach_add_(denom, cfg.eps)
        update = torch._foreach_div(self.m, bias1)
        torch._foreach_mul_(update, lr_t)
        torch._foreach_div_(update, denom)
        torch._foreach_sub_(self.params, update)
        for p in self.params:
            p.grad = None

    def sampler(self, temperature):
        """`next_probs(token_id, pos_id)`: the whole prefix again, the last row's softmax."""
        ids = []
        self.use_threads()

        @torch.no_grad()
        def next_probs(token_id, pos_id):
            ids.append(token_id)
            with self.autocast():
                logits = self.net.logits(torch.tensor([ids], device=self.device))[0, -1]
            logits = logits.to(self.weight_dtype) * temperature**-1
            return torch.softmax(logits, dim=-1).tolist()

        return next_probs


def rmsnorm(x):
    """Rescale each row of `x` to unit root-mean-square (no learned gain)."""
    return x * ((x * x).mean(dim=-1, keepdim=True) + 1e-5) ** -0.5


def loss_and_grads(cfg, vocab_size, weights, tokens):
    """(loss, gradients keyed like `weights`) for one name in float64 on the CPU:
    the gradient oracle for tests."""
    model = Model(cfg, vocab_size, weights, device="cpu")
    loss = model.loss(tokens)
    loss.backward()
    return loss.item(), {name: p.grad.tolist() for name, p in zip(model.names, model.params)}
