"""The checkers of chapters 17 and 18 accept the answers the chapters give and name the
usual mistakes; and the cells that need PyTorch in a kernel without it."""

import contextlib
import io
import json
import struct
import sys
import types
from pathlib import Path

import pytest

from microgpt.book import torch_cells
from microgpt.book.exercises_engines import (
    bfloat16,
    check_batch_mean,
    check_memory_per_device,
    check_to_bfloat16,
    zero_bytes,
)
from microgpt.book.figures import record

BOOK = Path(__file__).resolve().parents[1] / "book"
CHAPTERS = {17: BOOK / "17_pytorch.ipynb", 18: BOOK / "18_data_parallel.ipynb"}


def cells(chapter):
    return json.loads(CHAPTERS[chapter].read_text(encoding="utf-8"))["cells"]


def answers(chapter):
    """The code of every answer the chapter reveals (```python blocks in <details> notes)."""
    blocks = []
    for cell in cells(chapter):
        note = "".join(cell["source"])
        if cell["cell_type"] == "markdown" and "<details>" in note:
            blocks += [part.split("```", 1)[0] for part in note.split("```python\n")[1:]]
    return blocks


def answer(chapter, name):
    """The function `name` as the chapter's answer note defines it."""
    (code,) = [block for block in answers(chapter) if f"def {name}(" in block]
    namespace = {}
    exec(code, namespace)
    return namespace[name]


def to_bfloat16(x):  # chapter 17's answer
    (bits,) = struct.unpack("<I", struct.pack("<f", x))
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def fails(check, fn, words):
    result = check(fn)
    assert not result.ok and words in result.message, result.message
    assert "\n" not in result.message  # one line


def test_the_chapters_answers_pass_their_checkers():
    assert check_to_bfloat16(answer(17, "to_bfloat16")).ok
    assert check_batch_mean(answer(18, "batch_mean")).ok
    assert check_memory_per_device(answer(18, "memory_per_device")).ok


def test_the_answer_notes_say_what_their_answers_give():
    # chapter 17: "Rounding `1 + 1/256` gives 1.0"; the next bfloat16 after 1 is 1 + 1/128
    to_bfloat16 = answer(17, "to_bfloat16")
    assert to_bfloat16(1 + 1 / 256) == 1.0 and to_bfloat16(1 + 1 / 128) == 1 + 1 / 128
    # chapter 18: "`memory_per_device(4192, 2, 0)` is 67,072 bytes" for microgpt's 4192
    assert answer(18, "memory_per_device")(4192, 2, 0) == 67_072


def test_chapter_17_s_second_answer_runs_on_the_record():
    (code,) = [block for block in answers(17) if "torch_engines" in block]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(code, {"record": record})
    rows = record()["torch_engines"]["rows"]
    fastest = {}
    for row in rows:
        fastest.setdefault((tuple(row["shape"][:2]), row["batch"]), []).append(row)
    want = []
    for (shape, batch), group in fastest.items():
        best = min(group, key=lambda r: r["cpu_ms_per_step"])
        want.append(f"{shape} {batch} {best['engine']} {best['cpu_ms_per_step']}")
    assert len(fastest) > 1 and printed.getvalue().splitlines() == want


def test_bfloat16_is_what_pytorch_rounds_to():
    torch = pytest.importorskip("torch")
    values = [1.0, 1 / 3, 1 + 2**-8, 1 + 3 * 2**-8, -2.5e-3, 3.0e38, 65504.0, 0.1]
    rounded = torch.tensor(values, dtype=torch.float32).to(torch.bfloat16).float().tolist()
    assert [bfloat16(x) for x in values] == rounded


def test_to_bfloat16_accepts_the_answer():
    assert check_to_bfloat16(to_bfloat16).ok


def test_to_bfloat16_that_truncates_is_named():
    def truncate(x):
        (bits,) = struct.unpack("<I", struct.pack("<f", x))
        return struct.unpack("<f", struct.pack("<I", bits & 0xFFFF0000))[0]

    result = check_to_bfloat16(truncate)
    assert not result.ok and "cuts the low 16 bits off" in result.message


def test_to_bfloat16_that_rounds_ties_up_is_named():
    def ties_up(x):
        (bits,) = struct.unpack("<I", struct.pack("<f", x))
        return struct.unpack("<f", struct.pack("<I", (bits + 0x8000) & 0xFFFF0000))[0]

    result = check_to_bfloat16(ties_up)
    assert not result.ok and "even neighbour" in result.message


def test_batch_mean_accepts_the_answer_and_names_a_mean_of_means():
    assert check_batch_mean(lambda sums, counts: sum(sums) / sum(counts)).ok
    result = check_batch_mean(lambda s, c: sum(a / b for a, b in zip(s, c)) / len(s))
    assert not result.ok and "mean of the processes' means" in result.message


def test_memory_per_device_is_the_zero_paper_s_and_names_the_stage():
    num_params, devices, paper = (7.5e9, 64, {0: 120e9, 1: 31.4e9, 2: 16.6e9, 3: 1.875e9})
    for stage, gb in paper.items():
        assert zero_bytes(num_params, devices, stage) == pytest.approx(
            gb, rel=5e-3
        )  # the paper rounds
    assert check_memory_per_device(zero_bytes).ok
    everything_split = check_memory_per_device(lambda n, d, s: 16 * n / (d if s else 1))
    assert not everything_split.ok and "stage 1 splits only the optimizer" in (
        everything_split.message
    )


def test_unwritten_exercises_say_so():
    def unwritten(*args):
        raise NotImplementedError

    for check in (check_to_bfloat16, check_batch_mean, check_memory_per_device):
        assert "not written yet" in check(unwritten).message


def test_without_torch_a_cell_prints_one_line_and_its_stored_outputs(tmp_path, monkeypatch, capsys):
    source = "if needs_torch():\n    print('hello')"
    cell = {
        "cell_type": "code",
        "source": source.splitlines(keepends=True),
        "outputs": [
            {"output_type": "stream", "name": "stdout", "text": ["hello\n"]},
            {"output_type": "execute_result", "data": {"text/plain": ["42"]}, "metadata": {}},
        ],
    }
    (tmp_path / "17_x.ipynb").write_text(json.dumps({"cells": [cell]}))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch_cells, "have_torch", lambda: False)
    monkeypatch.setattr(torch_cells, "current_cell_source", lambda: source)
    assert torch_cells.needs_torch() is False
    assert capsys.readouterr().out == f"{torch_cells.NOTE}\nhello\n42\n"


def test_with_torch_a_cell_runs_and_prints_nothing_more(monkeypatch, capsys):
    monkeypatch.setattr(torch_cells, "have_torch", lambda: True)
    assert torch_cells.needs_torch() is True
    assert capsys.readouterr().out == ""


def test_a_cell_no_chapter_stores_shows_only_the_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch_cells, "have_torch", lambda: False)
    monkeypatch.setattr(torch_cells, "current_cell_source", lambda: "print(1)")
    assert torch_cells.needs_torch() is False
    assert capsys.readouterr().out == torch_cells.NOTE + "\n"


def test_to_bfloat16_wrong_answers_are_named():
    def float32_only(x):  # rounds to float32, never to bfloat16
        return struct.unpack("<f", struct.pack("<f", x))[0]

    fails(check_to_bfloat16, float32_only, "expected")
    fails(check_to_bfloat16, lambda x: round(x), "return a float")
    fails(check_to_bfloat16, lambda x: str(x), "return a float")
    fails(check_to_bfloat16, lambda x: 1 / 0, "raised ZeroDivisionError")


def test_batch_mean_wrong_answers_are_named():
    fails(check_batch_mean, lambda sums, counts: sum(sums), "expected")
    fails(check_batch_mean, lambda sums, counts: sum(sums) / len(counts), "expected")
    fails(check_batch_mean, lambda sums, counts: f"{sum(sums) / sum(counts)}", "expected")
    fails(check_batch_mean, lambda sums, counts: sums[len(sums)], "raised IndexError")


def split(num_params, devices, split_weights, split_grads, split_optimizer):
    weights, grads, optimizer = 2 * num_params, 2 * num_params, 12 * num_params
    weights /= devices if split_weights else 1
    grads /= devices if split_grads else 1
    return weights + grads + optimizer / (devices if split_optimizer else 1)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        # everything split, even with plain data parallelism
        (lambda n, d, s: 16 * n / d, "stage 0 keeps everything on every device"),
        # stage 1 splitting the gradients as well
        (lambda n, d, s: split(n, d, s >= 3, s >= 1, s >= 1), "stage 1 splits only the optimizer"),
        # stage 2 still splitting only the optimizer state
        (lambda n, d, s: split(n, d, s >= 3, s >= 3, s >= 1), "stage 2 splits the gradients too"),
        # stage 3 keeping the weights whole
        (lambda n, d, s: split(n, d, False, s >= 2, s >= 1), "stage 3 splits everything"),
    ],
    ids=["stage0", "stage1", "stage2", "stage3"],
)
def test_memory_per_device_names_the_stage_it_gets_wrong(wrong, hint):
    fails(check_memory_per_device, wrong, hint)


def test_memory_per_device_that_returns_no_number_is_rejected():
    fails(check_memory_per_device, lambda n, d, s: None, "expected")


# ---------------------------------------------------------------------------------------
# the cells that need PyTorch


def guarded_cells(chapter):
    """The chapter's code cells that use PyTorch (its stage, torchrun or torch itself)."""
    uses = ("torch.", "pytorch.", "parallel_run", "torchrun")
    return [
        cell
        for cell in cells(chapter)
        if cell["cell_type"] == "code" and any(u in "".join(cell["source"]) for u in uses)
    ]


@pytest.mark.parametrize("chapter", [17, 18])
def test_every_cell_that_uses_torch_is_guarded_and_finds_its_own_outputs(chapter):
    found = guarded_cells(chapter)
    assert found
    for cell in found:
        source = "".join(cell["source"])
        assert "if needs_torch():" in source, source
        assert "differs-in-browser" in cell["metadata"].get("tags", []), source
        assert torch_cells.stored_outputs(source, BOOK) == cell["outputs"], source


def test_a_chapter_cell_without_torch_prints_the_line_and_what_it_printed(monkeypatch, capsys):
    (cell,) = [c for c in guarded_cells(17) if "resolve_device" in "".join(c["source"])]
    stored = "".join(
        torch_cells.text(o["text"]) for o in cell["outputs"] if o["output_type"] == "stream"
    )
    monkeypatch.chdir(BOOK)
    monkeypatch.setattr(torch_cells, "have_torch", lambda: False)
    monkeypatch.setattr(torch_cells, "current_cell_source", lambda: "".join(cell["source"]))
    assert stored and torch_cells.needs_torch() is False
    assert capsys.readouterr().out == f"{torch_cells.NOTE}\n{stored}"


def test_have_torch_is_whether_torch_can_be_imported(monkeypatch):
    try:
        import torch  # noqa: F401

        importable = True
    except ImportError:
        importable = False
    assert torch_cells.have_torch() is importable
    monkeypatch.setattr(torch_cells, "find_spec", lambda name: None)
    assert torch_cells.have_torch() is False


def test_the_cell_s_source_is_the_kernel_s_last_input(monkeypatch):
    assert torch_cells.current_cell_source() is None  # not in a notebook
    shell = types.SimpleNamespace(user_ns={"In": ["", "print(1)", "if needs_torch():\n    x"]})
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))
    monkeypatch.setattr(torch_cells, "in_notebook", lambda: True)
    assert torch_cells.current_cell_source() == "if needs_torch():\n    x"
    shell.user_ns["In"] = []
    assert torch_cells.current_cell_source() is None


def test_stored_outputs_pass_over_notebooks_they_cannot_read(tmp_path):
    output = {"output_type": "stream", "name": "stdout", "text": "7\n"}
    cell = {"cell_type": "code", "source": "print(7)\n", "outputs": [output]}
    (tmp_path / "01_broken.ipynb").write_text("{not json")
    (tmp_path / "02_no_cells.ipynb").write_text(json.dumps({"metadata": {}}))
    (tmp_path / "03_markdown.ipynb").write_text(
        json.dumps({"cells": [{"cell_type": "markdown", "source": "print(7)", "outputs": []}]})
    )
    (tmp_path / "04_right.ipynb").write_text(json.dumps({"cells": [cell]}))
    assert torch_cells.stored_outputs("  print(7)  ", tmp_path) == [output]
    assert torch_cells.stored_outputs("print(8)", tmp_path) == []
    assert torch_cells.stored_outputs(None, tmp_path) == []


def test_text_joins_a_notebook_s_lines():
    assert torch_cells.text(["a\n", "b"]) == "a\nb"
    assert torch_cells.text("ab") == "ab"
    assert torch_cells.text(None) == ""


def test_in_a_notebook_rich_outputs_are_displayed_as_themselves(monkeypatch):
    shown = []
    display = types.SimpleNamespace(display=lambda data, **kw: shown.append((data, kw)))
    monkeypatch.setitem(sys.modules, "IPython.display", display)
    monkeypatch.setattr(torch_cells, "in_notebook", lambda: True)
    figure = {
        "output_type": "display_data",
        "data": {"image/png": "iVBOR", "text/plain": ["<Figure>"]},
        "metadata": {"image/png": {"width": 400}},
    }
    torch_cells.show_output(figure)
    assert shown == [
        (
            {"image/png": "iVBOR", "text/plain": "<Figure>"},
            {"metadata": {"image/png": {"width": 400}}, "raw": True},
        )
    ]


def test_outside_a_notebook_rich_outputs_print_their_text(capsys):
    torch_cells.show_output({"output_type": "display_data", "data": {"image/png": "iVBOR"}})
    torch_cells.show_output({"output_type": "error", "ename": "X", "evalue": "", "traceback": []})
    assert capsys.readouterr().out == "\n"
