"""The package's own error type: a user mistake or an unusable input, said in one line.

Every error the command line reports (bad data, a broken checkpoint, a stage that
cannot run, a diverged loss, a benchmark that cannot run) derives from it, so the
CLI has one handler and tests can say "this input ends in our error, not a crash".
"""

import os
import signal
import sys


class MicrogptError(Exception):
    """A problem the user can fix; the message names it and the fix."""


def single_line(text):
    """`text` with line breaks and other control characters escaped (`\\n`, `\\x1b`).

    Messages quote what the user typed (a path may hold a newline or an escape
    sequence); escaped, the message stays one line and cannot drive the terminal.
    """
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in str(text))


def forget_interrupt():
    """Let a handled Ctrl-C end the process with our exit code (130), not by SIGINT.

    CPython marks the process to re-raise SIGINT at exit when a KeyboardInterrupt
    leaves code run by exec or eval of a string (dataclasses and namedtuple build
    their methods that way, so Ctrl-C while modules load often does), even when a
    caller then handles it. Running a string again clears the mark.
    """
    exec("")


def interrupted_while_loading(signum, frame):
    """SIGINT handler while `python -m microgpt` loads its modules: one line, exit 130.

    A KeyboardInterrupt raised inside the import machinery would print a traceback
    before any handler of ours could run; exiting here, at once, cannot.
    """
    os.write(2, b"microgpt: interrupted\n")
    os._exit(130)


def started_as_main():
    """Whether this process is `python [options] -m microgpt ...`, still loading."""
    argv = getattr(sys, "orig_argv", [])
    named = "-mmicrogpt" in argv or ("-m", "microgpt") in zip(argv, argv[1:])
    return sys.argv[:1] == ["-m"] and named


def catch_interrupt_while_loading():
    """Install `interrupted_while_loading` if Ctrl-C would otherwise raise KeyboardInterrupt
    (where SIGINT is ignored, as in a background job, it stays ignored)."""
    if started_as_main() and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, interrupted_while_loading)


def raise_interrupts():
    """From here on Ctrl-C raises KeyboardInterrupt again, for the commands' handlers."""
    if signal.getsignal(signal.SIGINT) is interrupted_while_loading:
        signal.signal(signal.SIGINT, signal.default_int_handler)
