"""A download of a file of known size: size-capped and deadline-bound.

Its own module, importing nothing of the package, because urllib (with http, email
and ssl) is slow to import; `microgpt.data` loads it only when it has no names file
and must download one.
"""

import threading
import time
import urllib.request


class DownloadError(Exception):
    """The download failed; the message says why."""


def one_line(error):
    """An exception as one line of text (some, like a redirect loop's, span several)."""
    return " ".join(f"{type(error).__name__}: {error}".split())


def fetch(url, limit, timeout, received, stop):
    """The body at `url`, at most `limit` bytes, appended to `received` as it comes."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        size = 0
        while size < limit and not stop.is_set():
            chunk = response.read1(min(1 << 16, limit - size))  # what has come
            if not chunk:
                break
            received.append(chunk)
            size += len(chunk)


def download(url, size, timeout=20.0, deadline=60.0):
    """The bytes at `url`, which must be exactly `size` bytes long.

    `timeout` bounds each wait for the server; `deadline` bounds the whole download,
    headers included, so a server trickling a byte a second cannot stall the run. The
    download runs in a thread the run stops waiting for; where there are no threads
    (the browser), the per-read timeout is the only bound.
    """
    received, failure, stop = [], [], threading.Event()

    def work():
        try:
            fetch(url, size + 1, timeout, received, stop)
        except Exception as e:  # offline, DNS, HTTP error, timeout, no sockets (browser)
            failure.append(e)

    start = time.monotonic()
    worker = threading.Thread(target=work, name="names.txt download", daemon=True)
    try:
        worker.start()
    except RuntimeError:
        work()
    else:
        worker.join(deadline)
    if worker.is_alive():
        stop.set()
        got = sum(map(len, list(received)))
        raise DownloadError(
            f"gave up after {time.monotonic() - start:.1f} s with {got} of {size} "
            "bytes; the server is too slow"
        )
    if failure:
        raise DownloadError(one_line(failure[0]))
    raw = b"".join(received)
    if len(raw) != size:
        raise DownloadError(f"got {len(raw)} bytes, expected {size} (truncated or wrong file)")
    return raw
