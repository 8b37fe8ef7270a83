"""Opt-in profiles of a whole run, switched on by environment variables.

MICROGPT_CPU_PROFILE=cpu.prof writes cProfile statistics (read them with
`python -m pstats cpu.prof` or snakeviz); MICROGPT_MEM_PROFILE=mem.txt writes a
tracemalloc report: peak traced memory and the top allocation sites.
"""

import contextlib
import cProfile
import marshal
import os
import tracemalloc

from .. import files
from ..files import OutputPathError

PROFILE_VARIABLES = ("MICROGPT_CPU_PROFILE", "MICROGPT_MEM_PROFILE")


def memory_report(snapshot, peak, top=25):
    lines = [f"peak traced memory: {peak / 2**20:.2f} MiB", f"top {top} allocation sites:"]
    for stat in snapshot.statistics("lineno")[:top]:
        lines.append(str(stat))
    return "\n".join(lines) + "\n"


def cpu_stats(profiler):
    """The profile in the format `pstats` reads (what `Profile.dump_stats` writes)."""
    profiler.create_stats()
    return marshal.dumps(profiler.stats)


@contextlib.contextmanager
def profiled(environ=os.environ):
    """Profile the body if MICROGPT_CPU_PROFILE / MICROGPT_MEM_PROFILE are set.

    The profiles are written however the body ends (a failed run is worth profiling
    too); a profile that cannot be written never hides the body's own error.
    """
    cpu_path, mem_path = (environ.get(name) for name in PROFILE_VARIABLES)
    profiler = cProfile.Profile() if cpu_path else None
    if mem_path:
        tracemalloc.start()
    if profiler:
        profiler.enable()
    failed = True
    try:
        yield
        failed = False
    finally:
        errors = []
        if profiler:
            profiler.disable()
            errors.append(write_profile("MICROGPT_CPU_PROFILE", cpu_path, cpu_stats(profiler)))
        if mem_path:
            snapshot = tracemalloc.take_snapshot()
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            report = memory_report(snapshot, peak).encode("utf-8")
            errors.append(write_profile("MICROGPT_MEM_PROFILE", mem_path, report))
        first = next((e for e in errors if e), None)
        if first and not failed:
            raise first


def write_profile(variable, path, data):
    """Write one profile; returns the `OutputPathError` (not raised) if it cannot be."""
    try:
        files.write_atomic(path, data)
    except OSError as e:
        return OutputPathError(f"{variable} {path}: not written ({e.strerror or e})")
    return None
