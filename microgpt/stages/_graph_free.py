"""What the stages without a graph share: the weights as one flat vector of numbers."""

from ..model import param_shapes


class FlatLayout:
    """Where each weight matrix lives in one flat vector, for the stages without a graph."""

    def __init__(self, cfg, vocab_size):
        self.shapes = param_shapes(cfg, vocab_size)
        self.offsets = {}  # name -> index of the matrix's first number
        self.size = 0
        for name, rows, cols in self.shapes:
            self.offsets[name] = self.size
            self.size += rows * cols

    def flatten(self, weights):
        """Every weight as one list of floats: matrix after matrix, row-major."""
        return [float(v) for name, _, _ in self.shapes for row in weights[name] for v in row]

    def unflatten(self, params):
        """The flat vector's numbers keyed like `init_weights`, as lists of rows."""
        out = {}
        for name, rows, cols in self.shapes:
            start = self.offsets[name]
            out[name] = [
                list(params[start + r * cols : start + (r + 1) * cols]) for r in range(rows)
            ]
        return out


class GraphFreeModel:
    """Sizes, Adam's settings and the flat layout; a stage adds its own numbers and passes."""

    def __init__(self, cfg, vocab_size, adam):
        self.cfg = cfg
        self.vocab_size = vocab_size
        self.adam = adam
        self.layout = FlatLayout(cfg, vocab_size)
