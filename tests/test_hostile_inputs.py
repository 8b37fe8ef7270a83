"""Every file a user hands over is untrusted: names files, checkpoints, downloads.

In-process where that is simpler: the parser of names files, the checkpoint loader,
sampling from extreme weights, downloads against a server on 127.0.0.1 (slow,
looping, unwritable cache), atomic writes, and property-based tests (hypothesis)
that random bytes and random JSON end in a result or in the package's own one-line
error, never another exception.
"""

import copy
import errno
import http.server
import json
import os
import random
import re
import stat
import subprocess
import time
from pathlib import Path

import pytest
from helpers import cli_env, record, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from local_server import serving

from microgpt import checkpoint, data, files, stages
from microgpt.data import DataError, Tokenizer, parse_names, read_names
from microgpt.errors import MicrogptError
from microgpt.sampling import SamplingError, generate
from microgpt.tools.cli import main

TRICKLE_S = 0.05  # one byte per this many seconds


def one_line_error(excinfo, *fragments):
    message = str(excinfo.value)
    assert "\n" not in message and message.strip(), message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


# ---------------------------------------------------------------------------------------
# class 10: text files are read as text


@pytest.mark.parametrize(
    "raw, expected",
    [
        (b"\xef\xbb\xbfemma\nzoe\n", ["emma", "zoe"]),  # a UTF-8 BOM
        (b"\xef\xbb\xbfemma\n\xef\xbb\xbfzoe\n", ["emma", "zoe"]),  # two files joined by cat
        (b"emma\rzoe\rmia", ["emma", "zoe", "mia"]),  # old Mac line endings
        (b"emma\r\nzoe\r\n\r\nmia\r\n", ["emma", "zoe", "mia"]),  # Windows
        (b"emma\r\nzoe\rmia\n", ["emma", "zoe", "mia"]),  # all three
        ("ann\u2028bob\x85cid\n".encode(), ["ann", "bob", "cid"]),  # Unicode line breaks
        ("  zoë \t\n\u3000李娜\u3000\n".encode(), ["zoë", "李娜"]),  # whitespace around
    ],
    ids=["bom", "bom-twice", "cr", "crlf", "mixed", "unicode-breaks", "spaces"],
)
def test_line_endings_and_byte_order_marks(raw, expected):
    docs = parse_names(raw, "names.txt")
    assert docs == expected
    assert "\ufeff" not in Tokenizer.from_docs(docs).chars


@pytest.mark.parametrize(
    "raw, fragments",
    [
        ("emma\nzoe\n".encode("utf-16"), ["is UTF-16", "iconv -f UTF-16 -t UTF-8"]),
        ("emma\nzoe\n".encode("utf-16-le"), ["is UTF-16"]),
        ("emma\nzoe\n".encode("utf-16-be"), ["is UTF-16"]),
        ("张伟\n王芳\n李娜\n".encode("utf-16-le"), ["is UTF-16"]),  # no NUL but the newline's
        ("ann\n".encode("utf-16-le"), ["is UTF-16"]),
        ("emma\nzoe\n".encode("utf-32"), ["is UTF-32", "iconv -f UTF-32"]),
        ("emma\nzoe\n".encode("utf-32-le"), ["is UTF-32"]),
        (b"\x7fELF\x02\x01\x01\x00\x00\x00\x00", ["binary"]),
        (b"emma\nzo\x00e\n", ["binary"]),
        (b"caf\xe9\n", ["not UTF-8", "offset 3"]),
        (b"", ["is empty"]),
        (b"\xef\xbb\xbf", ["no names"]),
        (b"\r\n\r\n \t \n", ["no names"]),
    ],
    ids=[
        "utf16-bom",
        "utf16le",
        "utf16be",
        "utf16le-cjk",
        "utf16le-one-name",
        "utf32-bom",
        "utf32le",
        "elf",
        "nul",
        "latin-1",
        "empty",
        "only-bom",
        "blank",
    ],
)
def test_files_that_are_not_utf8_names(tmp_path, raw, fragments):
    path = tmp_path / "names.txt"
    path.write_bytes(raw)
    with pytest.raises(DataError) as excinfo:
        read_names(path)
    message = one_line_error(excinfo, str(path), *fragments)
    record(f"--data: {raw[:16]!r}", 1, message)
    if "iconv" in message:  # the suggested command must not overwrite its own input
        assert message.endswith(f"{path} > {tmp_path / 'names-utf8.txt'})")


def test_names_file_limit_is_checked_before_reading(tmp_path):
    path = tmp_path / "big.txt"
    with open(path, "wb") as f:
        f.truncate(data.MAX_DATA_BYTES + 1)
    start = time.monotonic()
    with pytest.raises(DataError) as excinfo:
        read_names(path)
    one_line_error(excinfo, "larger than 16 MiB")
    assert time.monotonic() - start < 1


# ---------------------------------------------------------------------------------------
# class 6: checkpoints are validated as untrusted


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory):
    """A real checkpoint of a few steps of `flat` (no numpy needed)."""
    folder = tmp_path_factory.mktemp("checkpoint")
    names = folder / "names.txt"
    names.write_text("emma\nolivia\nava\nisabella\nsophia\nmia\nzoe\n")
    path = folder / "good.json"
    args = ["--data", str(names), "--steps", "2", "--stage", "flat", "--samples", "0"]
    assert main([*args, "--save", str(path)]) == 0
    return path


def mutated(good, change):
    doc = json.loads(good.read_text())
    change(doc)
    return json.dumps(doc).encode()


def set_config(**fields):
    return lambda doc: doc["config"].update(fields)


def first_weight(value):
    def change(doc):
        doc["weights"]["wte"][0][0] = value

    return change


def replace_first_weight(good, literal):
    doc = json.loads(good.read_text())
    text = good.read_text()
    first = json.dumps(doc["weights"]["wte"][0][0])
    return text.replace(f"[[{first}", f"[[{literal}", 1).encode()


def delete(*keys):
    def change(doc):
        target = doc
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]

    return change


CHECKPOINT_CASES = {
    # config
    "n_head 0": (set_config(n_head=0), "n_head must be a whole number from 1 to 256"),
    "n_head 3 (does not divide 16)": (set_config(n_head=3), "multiple of n_head"),
    "n_head 32 > n_embd": (set_config(n_head=32), "multiple of n_head"),
    "n_embd 16.0": (set_config(n_embd=16.0), "n_embd must be a whole number"),
    "n_embd '16'": (set_config(n_embd="16"), "n_embd must be a whole number"),
    "n_layer true": (set_config(n_layer=True), "n_layer must be a whole number"),
    "n_layer 10**400": (set_config(n_layer=10**400), "n_layer must be a whole number"),
    "block_size -1": (set_config(block_size=-1), "block_size must be"),
    "init_std NaN": (set_config(init_std=float("nan")), "init_std"),
    "init_std true": (set_config(init_std=True), "init_std"),
    "config missing a field": (delete("config", "n_head"), "exactly the fields"),
    "config with an extra field": (set_config(dropout=0.1), "exactly the fields"),
    "config null": (lambda doc: doc.update(config=None), "exactly the fields"),
    "config a list": (lambda doc: doc.update(config=[1, 16, 4, 16]), "exactly the fields"),
    # vocabulary
    "duplicate chars": (lambda doc: doc["chars"].append(doc["chars"][0]), "twice"),
    "no chars": (lambda doc: doc.update(chars=[]), "1 to 65535 characters"),
    "chars a string": (lambda doc: doc.update(chars="abc"), "not a list of characters"),
    "a two-letter char": (lambda doc: doc["chars"].__setitem__(0, "ab"), "not a list"),
    "a newline char": (lambda doc: doc["chars"].__setitem__(0, "\n"), "'\\n'"),
    "a lone surrogate char": (lambda doc: doc["chars"].__setitem__(0, "\ud800"), "\\ud800"),
    "a BOM char": (lambda doc: doc["chars"].__setitem__(0, "\ufeff"), "\\ufeff"),
    "chars missing": (delete("chars"), "not a list of characters"),
    # weights
    "weights missing": (delete("weights"), "weight names do not match"),
    "a matrix missing": (delete("weights", "wte"), "weight names do not match"),
    "an extra matrix": (lambda doc: doc["weights"].update(extra=[[0.0]]), "do not match"),
    "a row missing": (lambda doc: doc["weights"]["wte"].pop(), "wte is not"),
    "a column missing": (lambda doc: doc["weights"]["wpe"][3].pop(), "wpe is not"),
    "a row that is a number": (lambda doc: doc["weights"]["wpe"].__setitem__(0, 1.0), "wpe"),
    "a weight that is a string": (first_weight("0.1"), "not a finite number"),
    "a weight that is true": (first_weight(True), "not a finite number"),
    "a weight that is null": (first_weight(None), "not a finite number"),
    "a weight that is a list": (first_weight([0.1]), "not a finite number"),
    # the document
    "a version of 2": (lambda doc: doc.update(version=2), "version 2"),
    "version true": (lambda doc: doc.update(version=True), "version True"),
    "version '1'": (lambda doc: doc.update(version="1"), "version '1'"),
    "another format": (lambda doc: doc.update(format="keras"), "not a microgpt checkpoint"),
}


RAW_CHECKPOINTS = {
    "a 400-digit integer weight": (lambda g: replace_first_weight(g, "9" * 400), "finite"),
    "a 5000-digit integer weight": (lambda g: replace_first_weight(g, "9" * 5000), "not a JSON"),
    "a NaN literal": (lambda g: replace_first_weight(g, "NaN"), "'nan', not a finite"),
    "an Infinity literal": (lambda g: replace_first_weight(g, "-Infinity"), "'-inf'"),
    "1e400": (lambda g: replace_first_weight(g, "1e400"), "'inf', not a finite"),
    "[ * 100000": (lambda g: b"[" * 100_000, "not a JSON checkpoint"),
    '{"a": * 100000': (lambda g: b'{"a":' * 100_000, "not a JSON checkpoint"),
    "[] nested 100000 deep": (lambda g: b"[" * 100_000 + b"]" * 100_000, "not a JSON"),
    "a JSON list": (lambda g: b"[1, 2]", "not a microgpt checkpoint"),
    "a JSON string": (lambda g: b'"microgpt-checkpoint"', "not a microgpt checkpoint"),
    "JSON null": (lambda g: b"null", "not a microgpt checkpoint"),
    "an empty file": (lambda g: b"", "not a JSON checkpoint"),
    "half a checkpoint": (lambda g: g.read_bytes()[: len(g.read_bytes()) // 2], "not a JSON"),
    "a binary file": (lambda g: bytes(range(256)) * 4, "not a JSON checkpoint"),
    "UTF-16 JSON": (lambda g: g.read_text().encode("utf-16"), "is UTF-16 text"),
    "UTF-8 with a BOM": (lambda g: b"\xef\xbb\xbf" + g.read_bytes(), "not a JSON checkpoint"),
    "latin-1 bytes": (lambda g: b'{"format": "caf\xe9"}', "not a JSON checkpoint"),
}


@pytest.mark.parametrize("what", list(CHECKPOINT_CASES) + list(RAW_CHECKPOINTS))
def test_broken_checkpoints_are_one_line_exit_1(tmp_path, good_checkpoint, capsys, what):
    if what in CHECKPOINT_CASES:
        change, fragment = CHECKPOINT_CASES[what]
        content = mutated(good_checkpoint, change)
    else:
        make, fragment = RAW_CHECKPOINTS[what]
        content = make(good_checkpoint)
    path = tmp_path / "ck.json"
    path.write_bytes(content)
    with pytest.raises(checkpoint.CheckpointError) as excinfo:
        checkpoint.load(path)
    one_line_error(excinfo, str(path), fragment)
    assert main(["sample", "--load", str(path), "--stage", "flat"]) == 1
    captured = capsys.readouterr()
    record(f"sample --load: {what}", 1, captured.err)
    assert captured.err.count("\n") == 1 and fragment in captured.err and captured.out == ""


def test_huge_and_special_checkpoint_files(tmp_path, capsys):
    huge = tmp_path / "huge.json"
    with open(huge, "wb") as f:
        f.truncate(checkpoint.MAX_BYTES + 1)  # sparse: refused by its size, unread
    cases = [("a 256 MiB + 1 byte file", huge, "larger than 256 MiB")]
    cases.append(("a directory", tmp_path, "is a directory"))
    if Path("/dev/zero").exists():
        cases.append(("/dev/zero", Path("/dev/zero"), "larger than 256 MiB"))
    for what, path, fragment in cases:
        start = time.monotonic()
        assert main(["sample", "--load", str(path)]) == 1
        err = capsys.readouterr().err
        record(f"sample --load: {what}", 1, err)
        assert err.count("\n") == 1 and fragment in err, err
        assert time.monotonic() - start < 10


def huge_weights(good, magnitude, seed=0):
    """The checkpoint with every weight random in (-magnitude, magnitude)."""
    rng = random.Random(seed)
    doc = json.loads(good.read_text())
    for matrix in doc["weights"].values():
        for row in matrix:
            row[:] = [rng.uniform(-magnitude, magnitude) for _ in row]
    return json.dumps(doc)


SAMPLING_STAGES = ["baseline", "numeric_inference", "fused", "flat"]
if not stages.missing_requirements(stages.BY_NAME["tensor"]):
    SAMPLING_STAGES.append("tensor")


@pytest.mark.usefixtures("frozen_gc")  # the baseline samples with Value graphs
@pytest.mark.parametrize("magnitude", [1e300, 1e154, 1e30])
@pytest.mark.parametrize("temperature", ["1e-6", "0.5", "1e6"])
def test_finite_but_huge_weights_sample_or_say_so(
    tmp_path, good_checkpoint, capsys, magnitude, temperature
):
    path = tmp_path / "huge-weights.json"
    path.write_text(huge_weights(good_checkpoint, magnitude))
    for stage in SAMPLING_STAGES:
        args = ["sample", "--load", str(path), "--stage", stage, "--temperature", temperature]
        code = main([*args, "--samples", "3"])
        captured = capsys.readouterr()
        record(f"weights ±{magnitude:g}, --temperature {temperature}, {stage}", code, captured.err)
        if code == 0:
            assert captured.err == "" and captured.out.count("sample ") == 3
        else:
            assert code == 1 and captured.err.count("\n") == 1, captured.err
            assert "too extreme to sample from" in captured.err


class OverflowingModel:
    """A stage whose arithmetic raises where others return inf (Python floats do both)."""

    vocab_size = 3

    def __init__(self, error):
        self.error = error
        self.cfg = type("cfg", (), {"block_size": 4})

    def sampler(self, temperature):
        def next_probs(token_id, pos_id):
            raise self.error

        return next_probs


@pytest.mark.parametrize(
    "error",
    [OverflowError("math range error"), ZeroDivisionError("0.0 ** -1"), ValueError("math domain")],
)
def test_arithmetic_errors_in_a_sampler_are_sampling_errors(error):
    with pytest.raises(SamplingError) as excinfo:
        generate(OverflowingModel(error), random.Random(0), 0.5, 2)
    one_line_error(excinfo, "too extreme")


def test_other_sampler_bugs_are_not_hidden():
    with pytest.raises(ValueError, match="a bug"):
        generate(OverflowingModel(ValueError("a bug")), random.Random(0), 0.5, 2)


def test_a_loaded_checkpoint_samples(good_checkpoint, capsys):
    """The cases above fail for their reason, not because the good file is unusable."""
    assert main(["sample", "--load", str(good_checkpoint), "--samples", "2"]) == 0
    assert capsys.readouterr().out.count("sample ") == 2


# ---------------------------------------------------------------------------------------
# classes 8, 9, 11: downloads


@pytest.fixture(scope="module")
def server(names_path):
    """A good names.txt, a trickling body, trickling headers and a redirect to itself."""
    good = names_path.read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def trickle(self, payload, seconds=3.0):
            for i in range(min(len(payload), int(seconds / TRICKLE_S))):
                self.wfile.write(payload[i : i + 1])
                self.wfile.flush()
                time.sleep(TRICKLE_S)

        def do_GET(self):
            try:
                if self.path == "/good":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(good)))
                    self.end_headers()
                    self.wfile.write(good)
                elif self.path == "/trickle":  # the body, a byte at a time
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(good)))
                    self.end_headers()
                    self.trickle(good)
                elif self.path == "/trickle-headers":  # never even the end of the headers
                    self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                    self.trickle(b"X-Slow: " + b"x" * 1000)
                elif self.path == "/loop":
                    self.send_response(308)
                    self.send_header("Location", "/loop")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    self.send_error(404)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up: fine
                pass

    with serving(Handler) as url:
        yield url


@pytest.mark.parametrize("path", ["/trickle", "/trickle-headers"])
def test_download_has_an_overall_deadline(server, isolated, path):
    warnings = []
    start = time.monotonic()
    ds = data.load_dataset(url=server + path, deadline=0.5, timeout=1, warn=warnings.append)
    elapsed = time.monotonic() - start
    record(f"download trickling a byte per {TRICKLE_S} s ({path})", 0, warnings[-1])
    assert elapsed < 2.5, elapsed
    assert ds.is_fallback and ds.docs == data.fallback_docs()
    assert re.search(r"gave up after 0\.[5-9] s", warnings[-1]), warnings
    assert "too slow" in warnings[-1] and "\n" not in warnings[-1]
    assert not data.cache_path().exists()


def test_redirect_loop_is_one_line(server, isolated):
    warnings = []
    ds = data.load_dataset(url=server + "/loop", timeout=2, warn=warnings.append)
    record("download redirecting to itself", 0, warnings[-1])
    assert ds.is_fallback
    assert "redirect" in warnings[-1] and "\n" not in warnings[-1], warnings


def test_redirect_loop_through_the_cli(server, tmp_path):
    env = cli_env(tmp_path, MICROGPT_DATA_URL=server + "/loop")
    result = run_cli(["--steps", "2", "--samples", "1", "--stage", "flat"], tmp_path, env)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 3, lines  # downloading ..., the warning, training on the fallback
    assert lines[0].startswith("downloading names.txt")
    assert lines[1].startswith("warning: could not download") and "redirect" in lines[1]
    assert lines[2].startswith("training on the built-in fallback list")


def readonly_folder(folder):
    """Make `folder` unwritable: chmod for users, a read-only tmpfs for root."""
    folder.mkdir(parents=True)
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return lambda: folder.chmod(0o755)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        pytest.skip(f"running as root, and tmpfs cannot be mounted: {done.stderr.strip()}")
    return lambda: subprocess.run(["umount", str(folder)], check=False)


@pytest.mark.parametrize(
    "spoil",
    [
        "cache file is a directory",
        "cache folder is a file",
        "XDG_CACHE_HOME is a file",
        "read-only",
    ],
)
def test_verified_download_is_used_when_the_cache_cannot_be_written(
    server, isolated, names_docs, spoil
):
    cache = data.cache_path()
    undo = None
    if spoil == "cache file is a directory":
        cache.mkdir(parents=True)
    elif spoil == "cache folder is a file":
        cache.parent.parent.mkdir(parents=True)
        cache.parent.write_text("not a folder")
    elif spoil == "XDG_CACHE_HOME is a file":
        cache.parent.parent.write_text("not a folder")
    else:
        undo = readonly_folder(cache.parent)
    try:
        warnings = []
        ds = data.load_dataset(url=server + "/good", warn=warnings.append)
    finally:
        if undo:
            undo()
    record(f"download, {spoil}", 0, warnings[-1])
    assert ds.docs == names_docs and len(ds.docs) == 32033
    assert ds.source.endswith("(not cached)")
    assert warnings[-1].startswith("warning: could not cache names.txt")
    assert "using it anyway" in warnings[-1] and "\n" not in warnings[-1]
    assert len(warnings) == 2  # "downloading ..." and the one warning
    assert not [p for p in isolated.rglob("*.tmp")]


def test_no_home_folder_downloads_without_a_cache(server, isolated, names_docs, monkeypatch):
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.delenv("HOME", raising=False)

    def no_home():
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(Path, "home", staticmethod(no_home))
    warnings = []
    ds = data.load_dataset(url=server + "/good", warn=warnings.append)
    assert ds.docs == names_docs and ds.source.endswith("(not cached)")


def test_cache_file_mode_follows_the_umask(server, isolated):
    old = os.umask(0o027)
    try:
        data.load_dataset(url=server + "/good", warn=lambda message: None)
    finally:
        os.umask(old)
    assert stat.S_IMODE(data.cache_path().stat().st_mode) == 0o640


# ---------------------------------------------------------------------------------------
# class 4: atomic writes keep what the user had


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("umask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_files_get_the_umask_mode(tmp_path, umask, expected):
    old = os.umask(umask)
    try:
        files.write_atomic(tmp_path / "new.txt", b"data")
    finally:
        os.umask(old)
    assert mode(tmp_path / "new.txt") == expected


def test_existing_files_keep_mode_and_symlinks_stay_links(tmp_path):
    target = tmp_path / "real.txt"
    target.write_text("old")
    target.chmod(0o640)
    link = tmp_path / "link.txt"
    link.symlink_to("real.txt")
    chain = tmp_path / "chain.txt"
    chain.symlink_to(link)
    files.write_atomic(chain, b"new")
    assert chain.is_symlink() and link.is_symlink()
    assert target.read_text() == "new" and mode(target) == 0o640
    dangling = tmp_path / "dangling.txt"
    dangling.symlink_to("created.txt")
    files.write_atomic(dangling, b"made")
    assert dangling.is_symlink() and (tmp_path / "created.txt").read_text() == "made"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "keep.txt"
    target.write_text("old")

    def full(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OSError):
        files.write_atomic(target, b"new")
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
    (tmp_path / "folder").mkdir()  # a directory where the file should go
    with pytest.raises(OSError):
        files.write_atomic(tmp_path / "folder", b"new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "keep.txt"]


def test_output_check_leaves_nothing_behind(tmp_path):
    files.check_output_path(tmp_path / "out.json", "--json")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------
# property-based: a result, or the package's own one-line error, never another exception

PROPERTY = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@PROPERTY
@given(st.binary(max_size=2000))
def test_any_bytes_parse_as_names_or_say_why(raw):
    try:
        docs = parse_names(raw, "names.txt")
    except MicrogptError as e:
        assert isinstance(e, DataError) and "\n" not in str(e) and str(e).startswith("names.txt")
        return
    assert docs and all(doc and doc == doc.strip() for doc in docs)
    assert all(data.is_name_char(ch) for doc in docs for ch in doc)


@PROPERTY
@given(st.lists(st.text(max_size=12), max_size=20))
def test_any_text_round_trips_through_a_names_file(lines):
    raw = "\n".join(lines).encode("utf-8")
    try:
        docs = parse_names(raw, "names.txt")
    except DataError as e:
        assert "\n" not in str(e)
        return
    assert all("\n" not in doc and "\r" not in doc for doc in docs)


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)
CONFIG_FIELDS = ["n_layer", "n_embd", "n_head", "block_size", "init_std"]
small_configs = st.fixed_dictionaries(
    {name: st.integers(min_value=-2, max_value=40) | json_values for name in CONFIG_FIELDS}
)


def near_checkpoints():
    """Documents shaped like checkpoints, wrong in random places."""
    return st.fixed_dictionaries(
        {
            "format": st.just("microgpt-checkpoint") | json_values,
            "version": st.just(1) | json_values,
            "config": small_configs | json_values,
            "chars": st.lists(st.text(min_size=1, max_size=2), max_size=6) | json_values,
            "weights": st.dictionaries(
                st.sampled_from(["wte", "wpe", "lm_head", "layer0.attn_wq"]),
                st.lists(st.lists(json_scalars, max_size=4), max_size=4),
            )
            | json_values,
        }
    )


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("property") / "ck.json"


def load_or_error(path):
    try:
        cfg, chars, weights = checkpoint.load(path)
    except MicrogptError as e:
        assert isinstance(e, checkpoint.CheckpointError), type(e)
        assert "\n" not in str(e) and str(e).startswith(str(path)), str(e)
        return None
    assert chars and isinstance(weights, dict)
    return cfg


@PROPERTY
@given(json_values | near_checkpoints())
def test_any_json_loads_as_a_checkpoint_or_says_why(scratch, doc):
    scratch.write_text(json.dumps(doc))
    load_or_error(scratch)


@PROPERTY
@given(st.data())
def test_any_corruption_of_a_real_checkpoint_says_why(scratch, good_checkpoint, data_draw):
    doc = json.loads(good_checkpoint.read_text())
    doc = copy.deepcopy(doc)
    where = data_draw.draw(st.sampled_from(["config", "chars", "weights", "top"]))
    value = data_draw.draw(json_values)
    if where == "config":
        doc["config"][data_draw.draw(st.sampled_from(CONFIG_FIELDS))] = value
    elif where == "chars":
        doc["chars"][data_draw.draw(st.integers(0, len(doc["chars"]) - 1))] = value
    elif where == "weights":
        name = data_draw.draw(st.sampled_from(sorted(doc["weights"])))
        doc["weights"][name][0][0] = value
    else:
        doc[data_draw.draw(st.sampled_from(["format", "version", "config", "chars"]))] = value
    scratch.write_text(json.dumps(doc))
    load_or_error(scratch)


@PROPERTY
@given(st.binary(max_size=3000))
def test_any_bytes_load_as_a_checkpoint_or_say_why(scratch, raw):
    scratch.write_bytes(raw)
    load_or_error(scratch)
