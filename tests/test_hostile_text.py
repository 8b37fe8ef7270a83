"""Untrusted text never reaches the terminal raw.

A names file, a checkpoint, a mirror's HTTP reason phrase and an environment variable
are text the user did not write: what the commands print of it (samples, warnings,
errors) shows every control character (C0, C1, DEL) escaped, so it cannot set the
terminal's title, clear the screen or split a line. A names file's control characters
are data: letters of the vocabulary, kept and shown escaped (README, "Data").
"""

import http.server
import re

import pytest
from helpers import ROOT, assert_one_line, cli_env, record, run_cli
from local_server import serving

from microgpt import checkpoint, errors

TITLE = "\x1b]0;pwned\x07"  # sets the terminal's title
CLEAR = "\x1b[2J"  # clears the screen
C1 = "\x9b2J"  # the same, as one C1 control
RAW = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")  # every control but the line feed


def assert_no_raw_control(*texts):
    for text in texts:
        assert not RAW.search(text), ascii(text)


@pytest.mark.parametrize("text", [TITLE, CLEAR, C1, "\x7f", "a\tb", "\u202e", "x\x00y"])
def test_single_line_escapes_what_a_terminal_acts_on(text):
    shown = errors.single_line(text)
    assert_no_raw_control(shown)
    assert "\n" not in shown and "\u202e" not in shown
    assert errors.single_line("émile 李 ok") == "émile 李 ok"  # printable text as it was


def names_with_controls(tmp_path):
    path = tmp_path / "names.txt"
    lines = [f"ab{TITLE}c", f"de{CLEAR}f", f"gh{C1}i\x7f", "ann\tmarie", "zoe"]
    path.write_text(("\n".join(lines) + "\n") * 3, encoding="utf-8")
    return path


def test_samples_of_a_names_file_with_escape_sequences_are_escaped(tmp_path):
    names = names_with_controls(tmp_path)
    args = ["--steps", "30", "--samples", "30", "--stage", "flat", "--save", "ck.json"]
    args += ["--temperature", "2"]  # every letter gets drawn
    result = run_cli(args, tmp_path, cli_env(tmp_path, names))
    record("names file with ESC ] 0 ; ... BEL and ESC [ 2 J", result.returncode, result.stderr)
    assert result.returncode == 0, result.stderr
    assert_no_raw_control(result.stdout, result.stderr)
    assert "\\x1b" in result.stdout  # drawn, and shown escaped
    assert "vocab size: " in result.stdout
    # the characters are data: the vocabulary keeps them, the checkpoint too
    _, chars, _ = checkpoint.load(tmp_path / "ck.json")
    assert {"\x1b", "\x07", "\x9b", "\x7f", "\t"} <= set(chars)
    # and sampling the checkpoint escapes them again
    again = run_cli(
        ["sample", "--load", "ck.json", "--samples", "30", "--temperature", "2"],
        tmp_path,
        cli_env(tmp_path),
    )
    record("sample --load of a checkpoint holding ESC", again.returncode, again.stderr)
    assert again.returncode == 0, again.stderr
    assert_no_raw_control(again.stdout, again.stderr)
    assert "\\x1b" in again.stdout or "\\x07" in again.stdout


def test_errors_quoting_a_hostile_path_stay_one_line(tmp_path):
    path = f"gone{TITLE}\n{CLEAR}.txt"
    result = run_cli(["--data", path, "--steps", "1"], tmp_path, cli_env(tmp_path))
    assert_one_line(result, 1, "no such file", what="--data with ESC and a line break")
    assert_no_raw_control(result.stderr)


class ReasonPhrase(http.server.BaseHTTPRequestHandler):
    """A mirror whose HTTP reason phrase holds escape sequences."""

    def do_GET(self):
        self.send_response(503, f"Busy{TITLE}{CLEAR}{C1}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_mirrors_reason_phrase_is_escaped_in_the_warning(tmp_path):
    with serving(ReasonPhrase) as url:
        env = cli_env(tmp_path, MICROGPT_DATA_URL=f"{url}/names.txt")
        result = run_cli(["--steps", "1", "--samples", "1", "--stage", "flat"], tmp_path, env)
    record("a mirror's reason phrase with ESC", result.returncode, result.stderr)
    assert result.returncode == 0, result.stderr
    assert_no_raw_control(result.stdout, result.stderr)
    warning = [line for line in result.stderr.splitlines() if "could not download" in line]
    assert len(warning) == 1 and "503" in warning[0] and "\\x1b" in warning[0], result.stderr


def test_a_strange_cache_folder_is_escaped_in_the_warnings(tmp_path):
    cache = tmp_path / f"ca{TITLE}che\nnext{CLEAR}"
    env = cli_env(tmp_path, XDG_CACHE_HOME=str(cache))
    result = run_cli(["--steps", "1", "--samples", "1", "--stage", "flat"], tmp_path, env)
    record("XDG_CACHE_HOME with ESC and a line break", result.returncode, result.stderr)
    assert result.returncode == 0, result.stderr
    assert_no_raw_control(result.stdout, result.stderr)
    downloading = [line for line in result.stderr.splitlines() if "downloading" in line]
    assert len(downloading) == 1 and "\\n" in downloading[0], result.stderr


def test_load_dataset_hands_its_warn_function_escaped_lines(tmp_path, monkeypatch):
    from microgpt.data import load_dataset

    monkeypatch.delenv("MICROGPT_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / f"c{TITLE}\n"))
    lines = []
    with serving(ReasonPhrase) as url:
        dataset = load_dataset(url=f"{url}/names.txt", warn=lines.append)
    assert dataset.is_fallback and len(lines) >= 2
    assert_no_raw_control(*lines)
    assert all("\n" not in line for line in lines)


def test_the_readme_says_what_happens_to_control_characters():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    data = text[text.index("## Data") :]
    assert "control character" in data and "escaped" in data
