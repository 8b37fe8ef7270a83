"""The baseline reproduces Karpathy's microgpt run, line for line."""

import pytest

from microgpt.tools.cli import main

pytestmark = pytest.mark.usefixtures("frozen_gc")  # big graphs of Value nodes: see conftest

# Printed by the original microgpt.py with makemore's names.txt, seed 42, 20 steps.
EXPECTED_20_HEAD = ["num docs: 32033", "vocab size: 27", "num params: 4192"]
EXPECTED_20_LOSSES = {1: "3.3660", 2: "3.4243", 20: "2.7749"}
EXPECTED_20_SAMPLES = ["orhx", "pdi", "zoqnadn"]


@pytest.mark.heavy
def test_twenty_step_run_prints_the_original_lines(names_path, capsys):
    assert main(["--steps", "20", "--data", str(names_path), "--stage", "baseline"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == EXPECTED_20_HEAD
    steps = lines[3:23]
    for k, loss in EXPECTED_20_LOSSES.items():
        assert steps[k - 1] == f"step {k:4d} /   20 | loss {loss}"
    assert lines[23:25] == ["", "--- inference (new, hallucinated names) ---"]
    samples = lines[25:]
    assert len(samples) == 20
    assert samples[:3] == [f"sample  {i + 1}: {n}" for i, n in enumerate(EXPECTED_20_SAMPLES)]
