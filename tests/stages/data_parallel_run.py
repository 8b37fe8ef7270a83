"""A data-parallel run through the package's own functions, for the tests to start
under torchrun (or as torchrun would): process 0 prints every step's loss in full
(`repr`), which the command line rounds to four digits.

    python data_parallel_run.py NAMES_FILE STEPS NAMES_PER_PROCESS [TIMEOUT_SECONDS [SHAPE]]

SHAPE is `n_layer,n_embd,n_head,block_size` (default: microgpt's).
"""

import os
import sys
from datetime import timedelta

from microgpt import stages
from microgpt.config import GPTConfig
from microgpt.data import read_names
from microgpt.tools import distributed
from microgpt.train import Run


def main(names_file, steps, batch_size, timeout=None, shape=""):
    launch = distributed.launch_from(os.environ)
    module = stages.load("torch")
    fields = ("n_layer", "n_embd", "n_head", "block_size")
    cfg = GPTConfig(**dict(zip(fields, map(int, shape.split(","))))) if shape else GPTConfig()
    timeout = timedelta(seconds=float(timeout)) if timeout else distributed.TIMEOUT
    distributed.start(launch, module.check_options(device="cpu"), timeout)
    run = Run(read_names(names_file), module, cfg=cfg, options={"device": "cpu"})
    distributed.distribute(launch, run.model)
    with distributed.guard(launch):
        for _, loss in run.train(int(steps), int(batch_size) * launch.world_size):
            if launch.rank == 0:
                print(repr(loss), flush=True)
    distributed.stop()


if __name__ == "__main__":
    try:
        main(*sys.argv[1:])
    except distributed.LostProcess as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
