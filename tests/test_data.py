"""Data lookup, validation and download, against a server on 127.0.0.1."""

import http.server
import time

import pytest
from local_server import serving

from microgpt import data
from microgpt.data import DataError, Tokenizer, load_dataset, read_names


@pytest.fixture(scope="module")
def server(names_path):
    """Serves a good names.txt and the ways a download goes wrong."""
    good = names_path.read_bytes()
    bad_sum = good[:-2] + b"x\n"
    stall_seconds = 3

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def send_body(self, body, length=None):
            self.send_response(200)
            self.send_header("Content-Length", str(length or len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/good":
                self.send_body(good)
            elif self.path == "/badsum":
                self.send_body(bad_sum)
            elif self.path == "/truncated":
                self.send_body(good[:1000], length=len(good))
            elif self.path == "/short":  # honest Content-Length, but only part of the file
                self.send_body(good[:1000])
            elif self.path == "/stall":
                self.send_response(200)
                self.send_header("Content-Length", str(len(good)))
                self.end_headers()
                self.wfile.write(good[:10])
                self.wfile.flush()
                time.sleep(stall_seconds)
            else:
                self.send_error(404)

    with serving(Handler) as url:
        yield url


def test_download_verifies_and_caches(server, isolated, names_docs):
    warnings = []
    ds = load_dataset(url=f"{server}/good", warn=warnings.append)
    assert ds.docs == names_docs
    assert data.sha256(data.cache_path().read_bytes()) == data.NAMES_SHA256
    # the second call uses the cache and does not touch the network
    ds2 = load_dataset(url=f"{server}/404", warn=warnings.append)
    assert ds2.source == str(data.cache_path())
    assert ds2.docs == names_docs


@pytest.mark.parametrize("path", ["/badsum", "/404", "/truncated", "/short", "/stall"])
def test_failed_download_leaves_no_file_and_falls_back(server, isolated, path):
    warnings = []
    ds = load_dataset(url=f"{server}{path}", timeout=0.5, warn=warnings.append)
    assert ds.source == "built-in fallback list"
    assert ds.docs == data.fallback_docs()
    assert any(w.startswith("warning: could not download names.txt") for w in warnings)
    assert "--data" in warnings[-1]
    cache_dir = data.cache_path().parent
    assert not data.cache_path().exists()
    assert not cache_dir.exists() or list(cache_dir.iterdir()) == []  # no temp files either


def test_corrupt_cache_is_replaced(server, isolated, names_docs):
    data.write_atomic(data.cache_path(), b"not the names\n")
    ds = load_dataset(url=f"{server}/good", warn=lambda m: None)
    assert ds.docs == names_docs


def test_lookup_order(isolated, monkeypatch, tmp_path):
    explicit = tmp_path / "explicit.txt"
    explicit.write_text("ann\n")
    from_env = tmp_path / "env.txt"
    from_env.write_text("bob\n")
    (tmp_path / "work" / "input.txt").write_text("cid\n")
    monkeypatch.setenv("MICROGPT_DATA_URL", "http://127.0.0.1:9/never-used")
    assert load_dataset(explicit).docs == ["ann"]
    monkeypatch.setenv("MICROGPT_DATA", str(from_env))
    assert load_dataset().docs == ["bob"]
    assert load_dataset(explicit).docs == ["ann"]
    monkeypatch.delenv("MICROGPT_DATA")
    assert load_dataset().docs == ["cid"]


def test_the_site_builder_ships_the_names_the_package_would_read(isolated, monkeypatch, tmp_path):
    """`lite/build_site.find_data` follows the package's order (`data_source`), then the
    cache, then the built-in list; with no home folder there is no cache, not a crash."""
    import build_site  # lite/ is on pytest's pythonpath

    explicit, from_env = tmp_path / "explicit.txt", tmp_path / "env.txt"
    explicit.write_text("ann\n")
    from_env.write_text("bob\n")
    monkeypatch.setenv("MICROGPT_DATA", str(from_env))
    assert build_site.find_data(str(explicit))[0] == explicit.resolve()
    assert build_site.find_data(None)[0] == from_env.resolve()
    monkeypatch.delenv("MICROGPT_DATA")
    (tmp_path / "work" / "input.txt").write_text("cid\n")
    path, note = build_site.find_data(None)
    assert path == (tmp_path / "work" / "input.txt").resolve() and "./input.txt" in note
    (tmp_path / "work" / "input.txt").unlink()
    monkeypatch.delenv("XDG_CACHE_HOME")

    def no_home():
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(data.Path, "home", no_home)  # HOME unset, the user not in passwd
    assert data.cache_path() is None
    path, note = build_site.find_data(None)
    assert path == data.FALLBACK_PATH.resolve() and note.startswith("WARNING: no names file")
    monkeypatch.setenv("MICROGPT_DATA", str(tmp_path / "gone.txt"))
    with pytest.raises(SystemExit, match="MICROGPT_DATA=.*gone.txt: no such file; fix or unset it"):
        build_site.find_data(None)


def test_fallback_list_is_a_few_hundred_distinct_names():
    names = data.fallback_docs()
    assert 200 <= len(names) <= 1000
    assert len(set(names)) == len(names)
    assert all(n.isalpha() and n.islower() for n in names)


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"", "empty"),
        (b"\n  \n\n", "no names"),
        (b"caf\xe9\n", "not UTF-8"),
        (b"\x7fELF\x00\x01\x02", "binary"),
    ],
)
def test_bad_user_files_give_one_line_errors(tmp_path, content, problem):
    path = tmp_path / "names.txt"
    path.write_bytes(content)
    with pytest.raises(DataError) as err:
        read_names(path)
    message = str(err.value)
    assert str(path) in message and problem in message and "\n" not in message


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_names(tmp_path / "nope.txt")
    with pytest.raises(DataError, match="is a directory"):
        read_names(tmp_path)


def test_names_are_stripped_and_unicode_is_vocabulary(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("  zoë \n\nrené\r\n", encoding="utf-8")
    docs = read_names(path)
    assert docs == ["zoë", "rené"]
    tok = Tokenizer.from_docs(docs)
    assert "ë" in tok.chars and "é" in tok.chars
    assert tok.decode(tok.encode("zoë")[1:-1]) == "zoë"
    assert tok.encode("zoë")[0] == tok.bos == len(tok.chars)
