"""Opt-in profiles of a whole run, switched on by environment variables.

MICROGPT_CPU_PROFILE=cpu.prof writes cProfile statistics (read them with
`python -m pstats cpu.prof` or snakeviz); MICROGPT_MEM_PROFILE=mem.txt writes a
tracemalloc report: peak traced memory and the top allocation sites.
"""

import contextlib
import cProfile
import os
import tempfile
import tracemalloc
from pathlib import Path

from .data import write_atomic


def memory_report(snapshot, peak, top=25):
    lines = [f"peak traced memory: {peak / 2**20:.2f} MiB", f"top {top} allocation sites:"]
    for stat in snapshot.statistics("lineno")[:top]:
        lines.append(str(stat))
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def profiled(environ=os.environ):
    """Profile the body if MICROGPT_CPU_PROFILE / MICROGPT_MEM_PROFILE are set."""
    cpu_path = environ.get("MICROGPT_CPU_PROFILE")
    mem_path = environ.get("MICROGPT_MEM_PROFILE")
    profiler = cProfile.Profile() if cpu_path else None
    if mem_path:
        tracemalloc.start()
    if profiler:
        profiler.enable()
    try:
        yield
    finally:
        if profiler:
            profiler.disable()
            fd, tmp = tempfile.mkstemp(dir=Path(cpu_path).resolve().parent, suffix=".tmp")
            os.close(fd)
            profiler.dump_stats(tmp)
            os.replace(tmp, cpu_path)
        if mem_path:
            snapshot = tracemalloc.take_snapshot()
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            write_atomic(mem_path, memory_report(snapshot, peak).encode("utf-8"))
