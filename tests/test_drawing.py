"""The SVG drawings: valid XML, one box per graph node, the labels the book relies on."""

import random
import xml.etree.ElementTree as ET

import pytest

from microgpt.book import drawing
from microgpt.config import GPTConfig
from microgpt.engine import Value, topological_order
from microgpt.model import softmax

SVG = "{http://www.w3.org/2000/svg}"


def texts(root):
    return [t.text for t in root.iter(f"{SVG}text")]


def test_graph_svg_draws_every_node_once_with_ops_and_numbers():
    a, b = Value(2.0), Value(-3.0)
    c = (a * b + a) * b**-1
    c.backward()
    svg = drawing.graph_svg(c, labels={a: "a", b: "b"})
    root = ET.fromstring(str(svg))
    nodes = [g for g in root.iter(f"{SVG}g") if g.get("class") == "node"]
    assert len(nodes) == len(topological_order(c))
    labels = texts(root)
    assert {"a", "b", "+", "*", "**-1"} <= set(labels)
    assert f"{a.data:.3g} | grad {a.grad:.3g}" in labels
    edges = sum(len(n._children) for n in topological_order(c))
    assert len(list(root.iter(f"{SVG}polyline"))) == edges
    assert svg.summary == f"computation graph: {len(nodes)} nodes, depth 4"


def test_svg_is_text_and_a_picture_for_ipython():
    svg = drawing.graph_svg(Value(1.0) + 2.0)
    assert str(svg).startswith("<svg") and svg._repr_svg_() == str(svg)
    assert repr(svg) == svg.summary == "computation graph: 3 nodes, depth 2"


def test_op_label_reads_every_op_off_its_local_derivatives():
    x = Value(1.5)
    ops = {"+": x + 1.0, "*": x * 2.0, "exp": x.exp(), "log": x.log(), "relu": x.relu()}
    ops.update({"**3": x**3, "**-0.5": x**-0.5})
    for label, node in ops.items():
        assert drawing.op_label(node) == label
    assert drawing.op_label(x) == ""


def test_depth_of_a_chain_is_its_length():
    chain = Value(0.0)
    for _ in range(3000):  # deeper than the recursion limit: the walk is iterative
        chain = chain + 1.0
    assert drawing.graph_depth(chain) == 3001
    assert drawing.depths(chain)[chain] == 3001


def test_architecture_svg_shows_the_shapes_of_the_config():
    for cfg, vocab in ((GPTConfig(), 27), (GPTConfig(n_layer=2, n_embd=32, n_head=8), 50)):
        svg = drawing.architecture_svg(cfg, vocab)
        labels = " ".join(texts(ET.fromstring(str(svg))))
        e = cfg.n_embd
        assert f"wte {vocab} x {e}" in labels and f"wpe {cfg.block_size} x {e}" in labels
        assert f"{cfg.n_head} heads x {cfg.head_dim} dims" in labels
        assert f"fc1 {4 * e} x {e}" in labels and "lm_head" in labels
        assert labels.count("RMSNorm") == 1 + 2 * cfg.n_layer
        assert all(f"layer {i}" in labels for i in range(cfg.n_layer))


# ---------------------------------------------------------------------------
# geometry: no edge passes under a box


def crosses(segment, box):
    """Whether the segment enters the inside of the box (Liang-Barsky clipping)."""
    (x0, y0), (x1, y1) = segment
    left, top, right, bottom = box
    low, high = 0.0, 1.0
    for p, q in (
        (x0 - x1, x0 - left),
        (x1 - x0, right - x0),
        (y0 - y1, y0 - top),
        (y1 - y0, bottom - y0),
    ):
        if p == 0:
            if q <= 0:
                return False
        elif p < 0:
            low = max(low, q / p)
        else:
            high = min(high, q / p)
    return low < high


def test_crosses_sees_a_segment_through_a_box_and_not_one_beside_it():
    box = (0, 0, 10, 10)
    assert crosses(((-5, 5), (15, 5)), box) and crosses(((5, -5), (5, 15)), box)
    assert not crosses(((-5, 12), (15, 12)), box) and not crosses(((-5, 0), (15, -9)), box)


def small_graphs():
    a, b = Value(2.0), Value(-3.0)
    yield a * b + a  # chapter 02's first figure: `a` feeds two ops
    yield (a * b + a) * b**-1  # the same, one row deeper
    x = [Value(float(i)) for i in range(5)]
    yield sum(xi * x[0] for xi in x) + x[0].exp()  # one input used on every row
    rng = random.Random(0)  # chapter 02's attention of one query over two positions
    q = [Value(rng.gauss(0, 1)) for _ in range(2)]
    k = [[Value(rng.gauss(0, 1)) for _ in range(2)] for _ in range(2)]
    v = [Value(rng.gauss(0, 1)) for _ in range(2)]
    scores = [sum(qj * kj for qj, kj in zip(q, k_t)) / 2**0.5 for k_t in k]
    yield sum(w_t * v_t for w_t, v_t in zip(softmax(scores), v))


@pytest.mark.parametrize(
    "root", list(small_graphs()), ids=["a-feeds-two", "deeper", "fan-out", "attention"]
)
def test_no_edge_passes_under_a_box(root):
    boxes, edges, width, height = drawing.graph_layout(root)
    inside = 0.5  # touching a box's border (where an edge starts or ends) is not crossing
    rects = [
        (x + inside, y + inside, x + drawing.BOX_W - inside, y + drawing.BOX_H - inside)
        for x, y in boxes.values()
    ]
    assert len(edges) == sum(len(node._children) for node in boxes)
    for points in edges:
        for segment in zip(points, points[1:]):
            assert not any(crosses(segment, rect) for rect in rects), (segment, points)
            assert all(0 <= x <= width and 0 <= y <= height for x, y in segment)
