"""The package's own error type: a user mistake or an unusable input, said in one line.

Every error the command line reports (bad data, a broken checkpoint, a stage that
cannot run, a diverged loss, a benchmark that cannot run) derives from it, so the
CLI has one handler and tests can say "this input ends in our error, not a crash".
Here too: the one function that makes untrusted text safe for a terminal, and the one
way a line reaches standard error.
"""

import errno
import os
import signal
import sys


class MicrogptError(Exception):
    """A problem the user can fix; the message names it and the fix."""


def single_line(text):
    """`text` with line breaks and every other character a terminal would act on, or not
    show, escaped as Python writes it (`\\n`, `\\x1b`, `\\x9b`, `\\x7f`, `\\u202e`).

    Untrusted text goes through here before it reaches a terminal: the names a model
    samples (a names file or a checkpoint may hold `ESC ] 0 ; ... BEL`), warnings that
    quote a server or an environment variable, errors that quote what the user typed.
    Escaped, a message stays one line and cannot set the title or clear the screen.
    Printable text, ASCII or not, comes out as it went in.
    """
    text = str(text)
    if text.isprintable():  # the usual case, checked at C speed
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def safe_lines(text):
    """`text` kept as lines, each line `single_line`: for output of several lines."""
    return "\n".join(map(single_line, str(text).split("\n")))


class ClosedStream:
    """Standard output or error as Python sees it when the process started without it
    (`>&-`, `2>&-`): writing fails as writing to a closed descriptor does (EBADF), so
    the commands' handling of unwritable output applies, instead of an AttributeError."""

    closed_stream = True  # what `microgpt.files` looks for: not a file a path can name

    def __init__(self, name):
        self.name = name

    def write(self, text):
        raise OSError(errno.EBADF, "it is closed")

    def flush(self):
        pass  # nothing was written, nothing is pending

    def fileno(self):
        raise OSError(errno.EBADF, f"{self.name} is closed")

    def isatty(self):
        return False


def hold_standard_streams():
    """Give a process started with stdin, stdout or stderr closed a stand-in for each.

    The descriptor gets /dev/null, so no file opened later (a checkpoint's temporary
    file) takes its number and receives what C code writes there; Python's stream
    becomes a `ClosedStream`, so output to it is an error the commands report.
    """
    for fd, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        try:
            os.fstat(fd)
        except OSError:
            try:
                os.dup2(os.open(os.devnull, os.O_RDWR), fd)
            except OSError:
                pass
        if fd and getattr(sys, name) is None:
            setattr(sys, name, ClosedStream(f"standard {'output' if fd == 1 else 'error'}"))


def to_stderr(line):
    """Write one line to standard error, control characters escaped; never raises.

    A closed or full stderr (`2>&-`, `2>/dev/full`) loses the line, which nothing
    can help, but never turns a clean exit into a traceback, and never sends the
    line to stdout instead.
    """
    stream = sys.stderr
    if stream is None:
        return
    try:
        stream.write(single_line(line) + "\n")
        stream.flush()
    except (OSError, ValueError):  # closed, full, or an I/O error
        pass


def warn(message):
    """The default way the package warns: one escaped line on stderr."""
    to_stderr(message)


def os_problem(error):
    """An `OSError` of the machine (not of the user's input) as one line naming the cause
    and the fix: too few file descriptors, a full disk, no memory."""
    where = f" ({error.filename})" if getattr(error, "filename", None) else ""
    if error.errno in (errno.EMFILE, errno.ENFILE):
        try:
            import resource  # absent on Windows and in the browser

            limit = f" (this process may open {resource.getrlimit(resource.RLIMIT_NOFILE)[0]})"
        except (ImportError, AttributeError, OSError, ValueError):  # Pyodide: no getrlimit
            limit = ""
        return f"too many open files{limit}; raise the limit, for example: ulimit -n 1024"
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on the device{where}; free some space there"
    if error.errno == errno.ENOMEM:
        return "out of memory; close other programs or ask for less"
    return f"{error.strerror or error}{where}"


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
    try:
        os.write(2, b"microgpt: interrupted\n")
    except OSError:  # stderr closed: the exit code says it
        pass
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
