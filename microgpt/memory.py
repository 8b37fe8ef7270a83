"""How much memory a run needs, estimated before it starts, and how much it may have.

A model's memory is its weights with their gradients and Adam's two running means,
plus what one training step keeps for its backward pass: the numbers the forward
pass computes at every position of every name of the step (the activations). What a
number costs depends on how a stage stores it: a scalar graph makes a node of tens of
bytes for every multiply and every add, the graph-free Python stages a float object
in a list, the array stages 8 bytes in a buffer. Each stage's `Model` names its
storage (`memory_kind`, one of `STORAGE`), and `estimate` turns a shape, a vocabulary
and a batch into bytes.

The estimate is rough (tests keep it above what a step allocates and within a small
factor of it), which is enough to refuse, before a single weight is drawn, a run
that cannot fit: a vocabulary of a million characters, a batch of a thousand names,
a model wider than the machine. The limit is the smaller of the machine's memory and
the address space `ulimit -v` (RLIMIT_AS) leaves, less what the process already uses.
"""

import os
from dataclasses import dataclass

from .errors import MicrogptError
from .model import param_shapes


class MemoryLimitError(MicrogptError):
    """A run that cannot fit in memory, refused before it starts; the message has the
    estimate, the limit and what to make smaller."""


@dataclass(frozen=True)
class Storage:
    """Bytes a stage spends per weight and per number of a step's forward pass."""

    per_weight: int  # the weight, its gradient, Adam's two means, and the copies it keeps
    per_number: int  # per number a step keeps for its backward pass
    per_op: bool = False  # one node per multiply and per add (a scalar graph), not per output
    one_hot_table: bool = False  # keeps a vocabulary x vocabulary table of one-hot rows


# the largest vocabulary whose one-hot rows an array stage keeps as a table (8 * V * V bytes)
ONE_HOT_TABLE_MAX = 512


# Measured on CPython 3.11 (tests/test_shapes.py keeps each at or above what one step
# allocates, and within a small factor of it): a `Value` node with its float, gradient
# and tuples is about 250 bytes, a float in a list 32, a float64 in an array 8.
STORAGE = {
    "values": Storage(per_weight=160, per_number=260, per_op=True),  # the scalar chain
    "nodes": Storage(per_weight=200, per_number=400),  # a node per output (fused, tape)
    "lists": Storage(per_weight=200, per_number=60),  # flat float lists (flat)
    "float64": Storage(per_weight=64, per_number=40, one_hot_table=True),  # tensor, jit
}


def num_params(cfg, vocab_size):
    return sum(rows * cols for _, rows, cols in param_shapes(cfg, vocab_size))


def forward_numbers(cfg, vocab_size, positions):
    """Numbers one name's forward pass keeps over `positions` positions: per layer and
    position the stream, its norms, q, k, v, the heads, the MLP's hidden units; the
    attention's scores against every earlier position; the logits and probabilities."""
    E, L, H, V = cfg.n_embd, cfg.n_layer, cfg.n_head, vocab_size
    T = positions
    per_position = L * 17 * E + 3 * V + 2 * E
    return T * per_position + L * 2 * H * T * (T + 1) // 2


def graph_ops(cfg, vocab_size, positions):
    """Nodes a scalar graph makes for one name: a multiply and an add per weight used at
    each position, the attention's products against earlier positions, the rest."""
    E, L, H, V = cfg.n_embd, cfg.n_layer, cfg.n_head, vocab_size
    T = positions
    per_position = L * (24 * E * E + 12 * E) + 2 * V * E + 4 * V + 5 * E
    return T * per_position + L * (4 * E + 5 * H) * T * (T + 1) // 2


@dataclass(frozen=True)
class Estimate:
    """Bytes a run needs: weights (with gradients and Adam's state) and one step."""

    weights: int
    activations: int
    batch_size: int
    positions: int

    @property
    def total(self):
        return self.weights + self.activations


def estimate(kind, cfg, vocab_size, batch_size=1, positions=None):
    """The `Estimate` of a model stored as `kind` (a key of `STORAGE`), training on
    `batch_size` names of up to `positions` positions per step (default: a full block)."""
    storage = STORAGE[kind]
    positions = cfg.block_size if positions is None else min(positions, cfg.block_size)
    count = graph_ops if storage.per_op else forward_numbers
    numbers = count(cfg, vocab_size, positions) * batch_size
    table = 8 * vocab_size**2 if storage.one_hot_table and vocab_size <= ONE_HOT_TABLE_MAX else 0
    return Estimate(
        weights=num_params(cfg, vocab_size) * storage.per_weight + table,
        activations=numbers * storage.per_number,
        batch_size=batch_size,
        positions=positions,
    )


# ---------------------------------------------------------------------------------------
# what the process may use


def status_kib(field):
    """A field of /proc/self/status in KiB (VmRSS, VmSize), or 0 where there is none."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def machine_bytes():
    """The machine's physical memory, or None where the system does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def address_space_bytes():
    """The soft RLIMIT_AS (`ulimit -v`), or None when unlimited or unknown."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, AttributeError, OSError, ValueError):
        return None  # Windows has no `resource`; Pyodide's has no getrlimit
    return None if soft == resource.RLIM_INFINITY else soft


def memory_limit():
    """(bytes this process may still allocate, where that limit comes from), or None.

    The smaller of the machine's memory less this process's resident size and the
    address space `ulimit -v` allows less what the process has mapped already (the
    interpreter, numpy, a compiler)."""
    limits = []
    machine = machine_bytes()
    if machine:
        limits.append((machine - status_kib("VmRSS") * 1024, f"the machine's {gib(machine)}"))
    space = address_space_bytes()
    if space is not None:
        limits.append((space - status_kib("VmSize") * 1024, f"ulimit -v {space // 1024}"))
    return min(limits) if limits else None


def gib(n):
    """`n` bytes, readably: in GiB from one GiB on, else in MiB."""
    if n >= 2**30:
        return f"{n / 2**30:,.1f} GiB"
    return f"{n / 2**20:.0f} MiB" if n >= 2**24 else f"{n / 2**20:.1f} MiB"


def check_fits(kind, cfg, vocab_size, batch_size=1, positions=None, limit=None):
    """A `MemoryLimitError` unless the run's estimate fits under `limit` ((bytes, what);
    default `memory_limit()`); returns the estimate. `kind` None: a stage that does not
    say how it stores its numbers, which is not checked."""
    if kind is None:
        return None
    need = estimate(kind, cfg, vocab_size, batch_size, positions)
    limit = memory_limit() if limit is None else limit
    if limit is None or need.total <= limit[0]:
        return need
    room, source = limit
    names = f"{need.batch_size:,} names" if need.batch_size > 1 else "a name"
    raise MemoryLimitError(
        f"this model needs about {gib(need.total)} (weights and Adam {gib(need.weights)}, "
        f"one step on {names} of {need.positions} positions {gib(need.activations)}) with "
        f"{vocab_size:,} tokens in its vocabulary, but only {gib(max(room, 0))} is left "
        f"({source}); use a smaller model (--n-embd, --n-layer, --block-size), "
        "batch (--batch-size) or vocabulary (names with fewer distinct characters)"
    )
