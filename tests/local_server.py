"""A local HTTP server for the download tests: no test touches the network."""

import contextlib
import http.server
import threading


@contextlib.contextmanager
def serving(handler):
    """The base URL of `handler` (a BaseHTTPRequestHandler class) served on a free port."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
