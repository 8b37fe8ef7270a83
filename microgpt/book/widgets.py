"""Sliders and menus for chapter 4: drag the temperature, pick a name, instead of re-running.

Needs ipywidgets (`pip install -e ".[book]"`; the browser site serves it). The pictures are
plain HTML, built by `names_html` and `attention_html`, so they show the same in JupyterLab,
in the browser site offline and in a stored notebook, and can be tested without widgets.
"""

import html
import random

from ..arguments import ArgumentError, checked, instance, number, sequence, shown, whole
from ..arguments import temperature as a_temperature
from ..arguments import text as a_str
from ..config import GPTConfig
from ..data import Tokenizer
from ..sampling import generate
from .notebook import attention_weights

TOKENIZER = instance(Tokenizer, hint=" (Run(...).tokenizer)")


def a_run(value, label):
    """A trained `Run`, or anything with its `model` (of any stage) and `tokenizer`."""
    model = getattr(value, "model", None)
    parts = ("sampler", "vocab_size", "cfg", "weights")
    if not all(hasattr(model, part) for part in parts) or not isinstance(
        getattr(value, "tokenizer", None), Tokenizer
    ):
        raise ArgumentError(
            f"{label} must be a Run (Run(docs, stages.load('flat'))), not {shown(value)}"
        )
    return value


def name_list(value, label):
    """A list of names (str); [] too."""
    found = sequence(value, label, "names")
    if not all(isinstance(name, str) for name in found):
        raise ArgumentError(f"{label} must be a list of names (str), not {shown(value)}")
    return found


def some_names(value, label):
    """A list of at least one name (str)."""
    found = name_list(value, label)
    if not found:
        raise ArgumentError(f"{label} is empty; give at least one name, like ['emma']")
    return found


@checked(run=a_run, temperature=a_temperature, count=whole(0), seed=whole())
def sample_at(run, temperature, count=8, seed=0):
    """`count` names from `run`'s model at `temperature`, drawn with `random.Random(seed)`:
    the same seed for every temperature, so only the temperature changes what comes out."""
    rng = random.Random(seed)
    bos = run.tokenizer.bos
    return [run.tokenizer.decode(generate(run.model, rng, temperature, bos)) for _ in range(count)]


@checked(names=name_list, temperature=a_temperature)
def names_html(names, temperature):
    items = "".join(f"<li><code>{html.escape(name) or '(empty)'}</code></li>" for name in names)
    return (
        f'<p>temperature {temperature:.2f}:</p><ol style="columns: 4 8em; margin: 0">{items}</ol>'
    )


@checked(cfg=instance(GPTConfig), tokenizer=TOKENIZER, name=a_str)
def attention_html(cfg, weights, tokenizer, name):
    """One table per head: row = the position being read, column = a position it may look
    at, shade and number = the attention weight (layer 0; rows sum to 1)."""
    tokens = tokenizer.encode(name)[:-1]  # BOS and the letters: the positions the model reads
    labels = ["BOS"] + list(name)
    heads = attention_weights(cfg, weights, tokens)[0]
    cell = "padding: 2px 5px; text-align: right; font-family: monospace; font-size: 12px"
    tables = []
    for h, rows in enumerate(heads):
        head = "".join(f'<th style="{cell}">{html.escape(label)}</th>' for label in labels)
        body = []
        for pos, row in enumerate(rows):
            cells = []
            for weight in row + [None] * (len(labels) - len(row)):
                if weight is None:
                    cells.append(f'<td style="{cell}"></td>')
                else:
                    ink = "#fff" if weight > 0.55 else "#000"
                    shade = f"background: rgba(42, 111, 219, {weight:.3f}); color: {ink}"
                    cells.append(f'<td style="{cell}; {shade}">{weight:.2f}</td>')
            label = html.escape(labels[pos])
            body.append(f'<tr><th style="{cell}">{label}</th>{"".join(cells)}</tr>')
        tables.append(
            f'<table style="border-collapse: collapse; margin: 0 1em 1em 0">'
            f'<caption style="text-align: left">head {h}</caption>'
            f'<tr><th style="{cell}"></th>{head}</tr>{"".join(body)}</table>'
        )
    return f'<div style="display: flex; flex-wrap: wrap">{"".join(tables)}</div>'


@checked(run=a_run, count=whole(0), seed=whole(), value=number(0.1, 2.0))
def temperature_slider(run, count=8, seed=0, value=0.5):
    """A slider over the temperature and the names `run`'s model samples at it."""
    import ipywidgets as widgets

    slider = widgets.FloatSlider(
        value=value, min=0.1, max=2.0, step=0.1, description="temperature", continuous_update=False
    )
    shown = widgets.HTML(names_html(sample_at(run, value, count, seed), value))

    def update(change):
        shown.value = names_html(sample_at(run, change["new"], count, seed), change["new"])

    slider.observe(update, names="value")
    return widgets.VBox([slider, shown])


@checked(run=a_run, names=some_names)
def attention_explorer(run, names):
    """A menu of `names` (and a box for any other) and each head's attention over it."""
    import ipywidgets as widgets

    cfg, weights, tokenizer = run.model.cfg, run.model.weights(), run.tokenizer
    menu = widgets.Dropdown(options=list(names), value=names[0], description="name")
    typed = widgets.Text(placeholder="or type a name", description="")
    shown = widgets.HTML(attention_html(cfg, weights, tokenizer, names[0]))

    def show(name):
        known = set(tokenizer.chars)
        if not name or any(ch not in known for ch in name):
            shown.value = f"<p>{html.escape(name)}: use the letters a-z only</p>"
            return
        name = name[: cfg.block_size - 1]
        shown.value = attention_html(cfg, weights, tokenizer, name)

    menu.observe(lambda change: show(change["new"]), names="value")
    typed.observe(lambda change: show(change["new"].strip().lower()), names="value")
    return widgets.VBox([widgets.HBox([menu, typed]), shown])
