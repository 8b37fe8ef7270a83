"""Drawings for the book as SVG text: a graph of `Value`s, and the model's architecture.

Pure Python, no graphviz: the same picture renders in JupyterLab, in the HTML book and
in the browser site. Each function returns an `Svg`: its `str()` is the SVG text, and
IPython displays it as a picture (`image/svg+xml`).
"""

import math
from xml.sax.saxutils import escape

from ..engine import topological_order


class Svg:
    """SVG text (`str(svg)`) that IPython shows as a picture; its repr is one line."""

    def __init__(self, text, summary):
        self.text = text
        self.summary = summary

    def __str__(self):
        return self.text

    def __repr__(self):
        return self.summary

    def _repr_svg_(self):
        return self.text


def depths(root):
    """{node: depth} for every node under `root`: a leaf is 1, any other node one more
    than its deepest child. The root's depth bounds how deep a recursive walk goes."""
    depth = {}
    for node in topological_order(root):
        depth[node] = 1 + max((depth[child] for child in node._children), default=0)
    return depth


def graph_depth(root):
    return depths(root)[root]


def op_label(node):
    """The op that made `node`. A `Value` keeps no op name, so it is read off the
    local derivatives each op stores (see `microgpt.engine`)."""
    children, grads = node._children, node._local_grads
    if not children:
        return ""
    if len(children) == 2:
        a, b = children
        if tuple(grads) == (1, 1):
            return "+"
        if tuple(grads) == (b.data, a.data):
            return "*"
        return "op"
    (child,), (grad,) = children, grads
    x, y = child.data, node.data
    if grad == y and y == math.exp(x):
        return "exp"
    if x > 0 and y == math.log(x) and grad == 1 / x:
        return "log"
    if y == max(0, x) and grad == float(x > 0):
        return "relu"
    if x != 0 and y != 0:
        return f"**{grad * x / y:.6g}"  # d(x**k)/dx = k * x**k / x
    return "op"


def _mean(xs):
    return sum(xs) / len(xs) if xs else 0.0


def _text(x, y, label, size=12, weight="normal", anchor="middle"):
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" font-weight="{weight}" '
        f'text-anchor="{anchor}">{escape(label)}</text>'
    )


def _document(width, height, body):
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" style="max-width: 100%; height: auto" '
        'font-family="sans-serif">'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" '
        'markerHeight="6" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#555"/></marker></defs>'
        f'<rect width="100%" height="100%" fill="white"/>{"".join(body)}</svg>'
    )


BOX_W, BOX_H, GAP_X, GAP_Y, MARGIN = 112, 40, 14, 30, 12
LANE_W = 16  # the width an edge takes where it passes through a row of boxes


class Lane:
    """A point where an edge crosses a row it has no box in (a dummy node of the
    layered layout): rows are laid out with lanes as with boxes, so no box sits there."""

    def __init__(self):
        self._children = ()


def graph_layout(root):
    """(boxes, edges, width, height): the top-left corner of each node's box, and each
    edge as the polyline from the child's box down to its parent's.

    A layered drawing (Sugiyama): one row per depth; an edge that skips rows passes
    each of them through a lane of its own, so edges never cross a box.
    """
    depth = depths(root)
    parents = {node: [] for node in depth}
    for node in depth:
        for child in node._children:
            parents[child].append(node)
    row_of = {}
    for node in reversed(list(depth)):  # parents before children
        # an inner node sits at its depth; an input just above its first use
        inner = node._children or not parents[node]
        row_of[node] = depth[node] - 1 if inner else min(row_of[p] for p in parents[node]) - 1
    rows = [[] for _ in range(depth[root])]
    for node in depth:
        rows[row_of[node]].append(node)
    above, below = {}, {}  # each item's neighbours in the rows above and below
    chains = []  # [child, lanes..., parent] per edge
    for node in depth:
        for child in node._children:
            lanes = [Lane() for _ in range(row_of[child] + 1, row_of[node])]
            for row, lane in enumerate(lanes, start=row_of[child] + 1):
                rows[row].append(lane)
            path = [child, *lanes, node]
            for upper, lower in zip(path, path[1:]):
                below.setdefault(upper, []).append(lower)
                above.setdefault(lower, []).append(upper)
            chains.append(path)
    order = {}

    def place(row):
        order.update((item, i - (len(row) - 1) / 2) for i, item in enumerate(row))

    for row in rows:
        place(row)
    for _ in range(4):  # barycentre sweeps: each item near its neighbours, fewer crossings
        for row in rows + rows[::-1]:
            row.sort(key=lambda n: _mean([order[m] for m in above.get(n, []) + below.get(n, [])]))
            place(row)

    def span(item):
        return LANE_W if isinstance(item, Lane) else BOX_W

    widths = [sum(map(span, row)) + GAP_X * (len(row) - 1) for row in rows]
    width = 2 * MARGIN + max(widths)
    height = 2 * MARGIN + len(rows) * BOX_H + (len(rows) - 1) * GAP_Y
    where = {}
    for ri, (row, row_width) in enumerate(zip(rows, widths)):
        x = MARGIN + (width - 2 * MARGIN - row_width) / 2
        for item in row:
            where[item] = (x, MARGIN + ri * (BOX_H + GAP_Y))
            x += span(item) + GAP_X
    edges = []
    for child, *lanes, parent in chains:
        cx, cy = where[child]
        points = [(cx + BOX_W / 2, cy + BOX_H)]
        for lane in lanes:
            lx, ly = where[lane]
            points += [(lx + LANE_W / 2, ly), (lx + LANE_W / 2, ly + BOX_H)]
        px, py = where[parent]
        edges.append(points + [(px + BOX_W / 2, py)])
    boxes = {node: where[node] for node in depth}
    return boxes, edges, width, height


def graph_svg(root, labels=None, grads=True):
    """The graph under `root`, inputs at the top and `root` at the bottom: one row per
    depth, each node a box with its op (or its name in `labels`), data and grad."""
    labels = labels or {}
    where, lines, width, height = graph_layout(root)
    edges, boxes = [], []
    for points in lines:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        edges.append(
            f'<polyline points="{path}" fill="none" stroke="#555" marker-end="url(#arrow)"/>'
        )
    box_w, box_h = BOX_W, BOX_H
    for node, (x, y) in where.items():
        name = labels.get(node) or op_label(node) or "leaf"
        fill = "#dbe8f6" if node._children else "#f6ecd0"
        numbers = f"{node.data:.3g} | grad {node.grad:.3g}" if grads else f"{node.data:.3g}"
        boxes.append(
            f'<g class="node"><rect x="{x:.1f}" y="{y:.1f}" width="{box_w}" height="{box_h}" '
            f'rx="6" fill="{fill}" stroke="#333"/>'
            + _text(x + box_w / 2, y + 16, name, 13, "bold")
            + _text(x + box_w / 2, y + 32, numbers, 11)
            + "</g>"
        )
    summary = f"computation graph: {len(where)} nodes, depth {graph_depth(root)}"
    return Svg(_document(width, height, edges + boxes), summary)


def architecture_svg(cfg, vocab_size):
    """The GPT of `microgpt.model` from its config: one box per stage of the forward
    pass, with the shapes of its weights, and the residual connections around them."""
    e, hidden, v = cfg.n_embd, 4 * cfg.n_embd, vocab_size
    # (kind, title, detail, width of the vector arriving from above)
    steps = [
        ("in", "token id, position", f"one of {v} tokens, one of {cfg.block_size} positions", ""),
        ("box", "embeddings", f"wte {v} x {e}  +  wpe {cfg.block_size} x {e}", "ids"),
        ("box", "RMSNorm", "rescale to unit root mean square", e),
    ]
    for li in range(cfg.n_layer):
        steps += [
            ("fork", f"layer {li}: residual stream", "", e),
            ("box", "RMSNorm", "", ""),
            (
                "box",
                f"attention: {cfg.n_head} heads x {cfg.head_dim} dims",
                f"wq, wk, wv, wo {e} x {e}; keys and values cached",
                e,
            ),
            ("add", "+", "", e),
            ("fork", "", "", e),
            ("box", "RMSNorm", "", ""),
            ("box", "MLP", f"fc1 {hidden} x {e}, ReLU, fc2 {e} x {hidden}", e),
            ("add", "+", "", e),
        ]
    steps += [
        ("box", "lm_head", f"{v} x {e}: one logit per token", e),
        ("box", "softmax", "p(next token)", v),
    ]
    width, box_w, x0, margin, gap = 520, 300, 30, 14, 22
    heights = {"in": 40, "box": 44, "add": 26, "fork": 12}
    body, y, forks = [], margin, []
    centre = x0 + box_w / 2
    for kind, title, detail, incoming in steps:
        h = heights[kind]
        if kind == "fork":  # the residual stream leaves the main path here
            body.append(
                f'<line x1="{centre}" y1="{y - gap}" x2="{centre}" y2="{y + h}" stroke="#555"/>'
            )
            forks.append(y + h / 2)
            if title:
                body.append(_text(x0 + box_w + 28, y + h / 2 + 4, title, 11, "bold", "start"))
            y += h + gap
            continue
        if y > margin:
            body.append(
                f'<line x1="{centre}" y1="{y - gap}" x2="{centre}" y2="{y}" stroke="#555" '
                'marker-end="url(#arrow)"/>'
            )
            if incoming != "":
                body.append(_text(centre + 8, y - 7, str(incoming), 10, anchor="start"))
        if kind == "add":
            start, right, middle = forks.pop(), x0 + box_w + 18, y + h / 2
            body.append(
                f'<path d="M{centre},{start} H{right} V{middle} H{centre + h / 2}" '
                'fill="none" stroke="#b55" stroke-dasharray="5,3" marker-end="url(#arrow)"/>'
            )
            body.append(
                f'<circle cx="{centre}" cy="{middle}" r="{h / 2}" fill="#fbe3e3" stroke="#333"/>'
                + _text(centre, middle + 5, "+", 16, "bold")
            )
        else:
            fill = "#f6ecd0" if kind == "in" else "#dbe8f6"
            body.append(
                f'<rect x="{x0}" y="{y}" width="{box_w}" height="{h}" rx="6" fill="{fill}" '
                'stroke="#333"/>'
            )
            if detail:
                body.append(_text(centre, y + 18, title, 13, "bold"))
                body.append(_text(centre, y + 34, detail, 11))
            else:
                body.append(_text(centre, y + h / 2 + 5, title, 13, "bold"))
        y += h + gap
    layers = f"{cfg.n_layer} layer" + ("s" if cfg.n_layer != 1 else "")
    summary = f"GPT: {layers}, n_embd {e}, {cfg.n_head} heads, vocab {v}"
    return Svg(_document(width, y - gap + margin, body), summary)
