"""Stage `baseline`: Karpathy's microgpt, unchanged.

Every scalar is a `Value` and every arithmetic op a graph node, so one training
step on a 5-letter name builds tens of thousands of nodes and visits them twice.
This is the reference every later stage must reproduce, loss for loss.
"""

from ..model import GPT as Model

__all__ = ["Model"]
