"""What every command shares: its argument parser, flag validators and error handling.

User mistakes end in one line on stderr: exit code 2 for bad flags or values,
1 for a problem while running (bad data, a broken checkpoint, a diverged loss),
130 for Ctrl-C; a closed pipe (`... | head`) ends the run quietly.
"""

import argparse
import errno
import math
import os
import sys
import warnings
from contextlib import contextmanager

from .. import stages
from ..arguments import TEMPERATURE_RANGE
from ..errors import MicrogptError, os_problem, safe_lines, to_stderr
from ..files import OutputPathError, check_output_path, same_file_key


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad flag costs one line instead of usage plus error, and help
    that cannot be written (`--help > /dev/full`, `>&-`) is an error, not silence."""

    def error(self, message):
        if message.endswith("expected one argument"):  # `--temperature -inf`: read as a flag
            message += " (a value that starts with '-' goes after '=': --flag=-value)"
        to_stderr(f"{self.prog}: error: {message} (see --help)")
        self.exit(2)

    def print_help(self, file=None):
        self.write_help(self.format_help())

    def print_usage(self, file=None):
        self.write_help(self.format_usage())

    def write_help(self, text):
        """Help on stdout: a closed pipe ends quietly (exit 0), any other failure in one
        line (exit 1), whichever script the parser belongs to."""
        try:
            write_stdout(text)
        except BrokenPipeError:
            silence_stdout()
            self.exit(0)
        except OutputError as e:
            to_stderr(f"{self.prog}: error: {e}")
            self.exit(1)


def shown(text, limit=40):
    """`text` quoted for a message, cut short: a 5,000-digit number is not worth repeating."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


def whole_number(low=None, high=None):
    """A flag type: an integer in [low, high] (None: unbounded), else a one-line error."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            digits = text.strip().lstrip("+-").isdigit()
            problem = "has too many digits" if digits else "is not a whole number"
            raise argparse.ArgumentTypeError(f"{shown(text)} {problem}") from None
        if (low is not None and value < low) or (high is not None and value > high):
            if high is None:
                bound = f"at least {low}"
            elif low is None:
                bound = f"at most {high}"
            else:
                bound = f"between {low} and {high}"
            raise argparse.ArgumentTypeError(f"{shown(text)} must be {bound}")
        return value

    return parse


positive_int = whole_number(1)
count = whole_number(0)
integer = whole_number()


def temperature(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{shown(text)} is not a number") from None
    low, high = TEMPERATURE_RANGE
    if not (math.isfinite(value) and low <= value <= high):
        raise argparse.ArgumentTypeError(
            f"{shown(text)} must be a positive number from {low:g} to {high:g} (0.5 is usual)"
        )
    return value


def positive_number(text):
    """A flag type: a finite number above zero (a learning rate)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{shown(text)} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{shown(text)} must be a finite number above 0")
    return value


def input_file(text):
    """A flag type for a file the command reads: an empty path is a typo, not "the default"."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty; give a file name")
    return text


def output_file(text):
    """A flag type for a file the command will write: checked before any work starts."""
    try:
        check_output_path(text, "the path")
    except OutputPathError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("the path ")) from None
    return text


def stage_name(text):
    if text not in stages.BY_NAME:
        raise argparse.ArgumentTypeError(
            f"unknown stage {shown(text)}; choose one of: {', '.join(stages.stage_names())}"
        )
    return text


def write_stdout(text):
    """Write `text` to stdout now: a closed pipe raises BrokenPipeError (a quiet end),
    any other failure an `OutputError`."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except (OSError, AttributeError) as e:  # a full disk, /dev/full, stdout closed
        silence_stdout()
        closed = OSError(errno.EBADF, "it is closed")  # Python started without it (`>&-`)
        raise OutputError(e if isinstance(e, OSError) else closed) from None


def silence_stdout():
    """Point stdout at /dev/null, so nothing (not even the exit's flush) fails on a closed pipe."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (a test's capture)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def flush_stdout():
    """Flush what is still buffered; a reader that has gone (`| head`) is not an error.

    Returns False when the output could not be written (a full disk).
    """
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        silence_stdout()
    except OSError:
        silence_stdout()  # what is left cannot be written; the exit's flush must not retry
        return False
    except (AttributeError, ValueError):  # stdout replaced or closed
        pass
    return True


class Output:
    """`print` for results. When the reader goes away (`... | head`) or the output cannot
    be written (a full disk), either stop the command (a closed pipe ends it quietly) or,
    with `keep_going`, carry on silently: a run that still has a checkpoint to save must
    not lose it."""

    def __init__(self, keep_going=False):
        self.keep_going = keep_going
        self.closed = False
        self.error = None  # with keep_going: the OutputError to report at the end

    def __call__(self, line="", flush=False, end="\n"):
        if self.closed:
            return
        try:
            print(safe_lines(line), flush=flush, end=end)
        except BrokenPipeError:
            if not self.keep_going:
                raise
            self.closed = True
            silence_stdout()
        except OSError as e:  # `> /dev/full`, a full disk
            if not self.keep_going:
                raise OutputError(e) from None
            self.closed, self.error = True, OutputError(e)
            silence_stdout()


class OutputError(MicrogptError):
    """Standard output cannot be written (a full disk, /dev/full, an I/O error)."""

    def __init__(self, error):
        reason = getattr(error, "strerror", None) or error
        super().__init__(f"standard output cannot be written ({reason})")


def check_distinct_paths(outputs, inputs):
    """A message when two outputs are one file, or an output is an input (the names file),
    which the run would overwrite; None when every path is its own. Values may be None."""
    seen = {}
    for flag, path in [*inputs.items(), *outputs.items()]:
        if not path:
            continue
        key = same_file_key(path)  # a symlink or a hard link to the same file is that file
        if key in seen:
            return f"{flag} {path} is the same file as {seen[key]}; give each its own path"
        seen[key] = flag
    return None


def check_environment_paths(environ, names):
    """Output paths given through environment variables, checked like flags (exit 2).

    An empty variable (`MICROGPT_CPU_PROFILE= python -m microgpt`) is one not set.
    """
    for name in names:
        value = environ.get(name)
        if value:
            check_output_path(value, name)


OUT_OF_MEMORY = (
    "out of memory (the machine's, or what ulimit -v allows); "
    "try a smaller model, batch or names file"
)


def error_line(prog, message):
    """The one line an error costs (on stderr only: with stderr closed it is lost, and
    the exit code is all that is said)."""
    to_stderr(f"{prog}: error: {message}")


@contextmanager
def one_line_warnings(prog):
    """Python warnings (long names cut, a numpy overflow) as one escaped line each."""

    def show(message, category, filename, lineno, file=None, line=None):
        to_stderr(f"{prog}: warning: {message}")

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def note(prog, message):
    """A line on stderr that is neither an error nor a warning: what the command chose."""
    to_stderr(f"{prog}: note: {message}")


def run_command(prog, action, *args):
    """Run `action(*args)`; returns the exit code, turning expected failures into one line.

    The output is flushed here, inside the handlers: a reader that left early then
    ends the command quietly instead of failing the interpreter's last flush.
    """
    try:
        with one_line_warnings(prog):
            action(*args)
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            raise
        except OSError as e:
            raise OutputError(e) from None
    except MicrogptError as e:
        flush_stdout()  # what was printed comes before the error
        error_line(prog, e)
        return 1
    except MemoryError:  # what no estimate foresaw: a bigger allocation than any limit allows
        flush_stdout()
        error_line(prog, OUT_OF_MEMORY)
        return 1
    except KeyboardInterrupt:
        flush_stdout()
        to_stderr(f"{prog}: interrupted")
        return 130
    except BrokenPipeError:  # `python -m microgpt | head`
        silence_stdout()
        return 0
    except OSError as e:  # the machine's limits (file descriptors, disk), not the input
        flush_stdout()
        error_line(prog, os_problem(e))
        return 1
    return 0
