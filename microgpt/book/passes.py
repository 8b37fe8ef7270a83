"""The two cells every pass chapter has, one helper each: the proof that a stage behaves
as the baseline does, and the interleaved timing of stages on this machine, now.

The chapters show these and call them; the numbers of record (the ones the prose
quotes for a pass) come from the benchmark of record instead (`microgpt.book.figures`).
"""

from .. import stages
from ..tools.timing import side_by_side
from ..train import losses_and_samples

PROOF_STEPS = 30  # training steps compared


def prove_same_as_baseline(docs, stage_name, num_steps=PROOF_STEPS, tol=1e-12):
    """Train the stage `stage_name` and the baseline from seed 42 for `num_steps`, then
    sample 20 names from each: print the comparison, and fail unless the losses agree
    within `tol` and the names are the same. Returns (baseline losses, stage losses)."""
    base_losses, base_names = losses_and_samples(docs, stages.load("baseline"), num_steps)
    losses, names = losses_and_samples(docs, stages.load(stage_name), num_steps)
    max_diff = max(abs(a - b) for a, b in zip(losses, base_losses, strict=True))
    print(f"steps compared: {len(losses)}")
    print(f"max |loss diff| < {tol:g}: {max_diff < tol}")
    print(f"same 20 names: {names == base_names}")
    last = f"baseline {base_losses[-1]:.6f}, {stage_name} {losses[-1]:.6f}"
    print(f"loss at step {num_steps}: {last}")
    print("names:", ", ".join(names))
    assert max_diff < tol and names == base_names, f"{stage_name} does not behave as the baseline"
    return base_losses, losses


def time_stages(docs, stage_names, steps=5, rounds=3):
    """{stage: (wall ms, CPU ms) per step}: medians of `rounds` interleaved rounds of
    `steps` steps each, the first steps of the seed-42 run (`microgpt.tools.timing`,
    as the benchmark times them). Printed with the speed-up of each stage over the
    first: this machine, now, not the record."""
    modules = {name: stages.load(name) for name in stage_names}
    results = side_by_side(modules, docs, steps, rounds)
    result = {name: (r.ms_per_step, r.cpu_ms_per_step) for name, r in results.items()}
    first = stage_names[0]
    print(f"this machine, now: medians of {rounds} interleaved rounds of {steps} steps")
    for name, (wall_ms, cpu_ms) in result.items():
        line = f"{name:<18} {wall_ms:9.3f} ms/step wall {cpu_ms:9.3f} ms/step CPU"
        if name != first:
            line += f"   {result[first][1] / cpu_ms:6.2f}x CPU over {first}"
        print(line)
    return result
