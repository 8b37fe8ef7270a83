"""The checkers of chapters 17 and 18 accept the answers the chapters give and name the
usual mistakes; and the cells that need PyTorch in a kernel without it."""

import json
import struct

import pytest

from microgpt.book import torch_cells
from microgpt.book.exercises_engines import (
    bfloat16,
    check_batch_mean,
    check_memory_per_device,
    check_to_bfloat16,
    zero_bytes,
)


def to_bfloat16(x):  # chapter 17's answer
    (bits,) = struct.unpack("<I", struct.pack("<f", x))
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return struct.unpack("<f", struct.pack("<I", bits))[0]


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
