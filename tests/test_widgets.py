"""Chapter 4's widgets: the temperature slider and the attention explorer."""

import re

import pytest

from microgpt import Run, stages
from microgpt.book import widgets

ipywidgets = pytest.importorskip("ipywidgets")


@pytest.fixture(scope="module")
def run(names_docs):
    run = Run(names_docs, stages.load("flat"), seed=42)
    for _ in run.train(50):
        pass
    return run


def test_sample_at_draws_the_same_names_for_the_same_seed(run):
    cold = widgets.sample_at(run, 0.2, count=8, seed=0)
    assert widgets.sample_at(run, 0.2, count=8, seed=0) == cold
    assert widgets.sample_at(run, 1.5, count=8, seed=0) != cold
    assert len(cold) == 8


def test_slider_redraws_the_names_when_dragged(run):
    box = widgets.temperature_slider(run, count=5, seed=3)
    slider, shown = box.children
    assert "temperature 0.50" in shown.value
    slider.value = 1.2
    assert "temperature 1.20" in shown.value
    names = re.findall(r"<code>(.*?)</code>", shown.value)
    assert names == widgets.sample_at(run, 1.2, count=5, seed=3)


def test_attention_tables_hold_each_heads_weights(run):
    cfg = run.model.cfg
    page = widgets.attention_html(cfg, run.model.weights(), run.tokenizer, "emma")
    tables = re.findall(r"<table.*?</table>", page)
    assert len(tables) == cfg.n_head
    for table in tables:
        rows = re.findall(r"<tr><th[^>]*>([^<]*)</th>(.*?)</tr>", table)[1:]  # [0]: the header
        assert [label for label, _ in rows] == ["BOS", "e", "m", "m", "a"]
        for pos, (_, cells) in enumerate(rows):
            weights = [float(w) for w in re.findall(r">(\d\.\d\d)</td>", cells)]
            assert len(weights) == pos + 1  # a position sees itself and the ones before
            assert sum(weights) == pytest.approx(1, abs=0.01 * len(weights))


def test_explorer_follows_the_menu_and_refuses_other_letters(run):
    box = widgets.attention_explorer(run, ["anna", "kamon"])
    (menu, typed), shown = box.children[0].children, box.children[1]
    assert "<caption" in shown.value and ">a</th>" in shown.value
    menu.value = "kamon"
    assert ">k</th>" in shown.value
    typed.value = "Zoé"
    assert shown.value == "<p>zoé: use the letters a-z only</p>"
