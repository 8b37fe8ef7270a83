"""Drive the built site in Debian's headless Chromium, with the network cut off.

Shared by tests/test_site.py and lite/bench_browser.py.  Only loopback is
reachable: every other hostname is made unresolvable, and every request the
page, its workers and its service worker make is recorded so a test can prove
that nothing left the machine.
"""

import functools
import http.server
import json
import socketserver
import tempfile
import threading
import time
import urllib.parse
from contextlib import contextmanager

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
MIME = {
    ".wasm": "application/wasm",
    ".mjs": "text/javascript",
    ".js": "text/javascript",
    ".json": "application/json",
    ".ipynb": "application/json",
    ".whl": "application/octet-stream",
    ".zip": "application/zip",
    ".txt": "text/plain",
    ".py": "text/x-python",
}


class _Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **MIME}
    overrides = {}  # URL path -> body (bytes), to simulate a new deploy
    log = None  # a ServerLog, or None

    def end_headers(self):
        self.send_header("Cache-Control", "no-cache")  # a rebuilt site is seen at once
        super().end_headers()

    def do_GET(self):
        if self.log is None:
            return self._get()
        started = time.monotonic()
        try:
            return self._get()
        finally:
            self.log.add(self.path, started, time.monotonic())

    def _get(self):
        body = self.overrides.get(urllib.parse.urlsplit(self.path).path)
        if body is None:
            return super().do_GET()
        self.send_response(200)
        self.send_header("Content-Type", self.guess_type(self.path))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # keep test output readable
        pass


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):  # browsers drop connections at will
        pass


class ServerLog:
    """Every request the server answered: (path, start, end) in time.monotonic() seconds.

    The same for every engine, so a slow start can be read request by request.
    """

    def __init__(self):
        self.entries = []
        self._lock = threading.Lock()

    def add(self, path, start, end):
        with self._lock:
            self.entries.append((path, start, end))

    def since(self, t0):
        """Entries that started after t0, as dicts with times in seconds after t0."""
        with self._lock:
            rows = [e for e in self.entries if e[1] >= t0]
        return [
            {"path": path, "start_s": round(start - t0, 3), "end_s": round(end - t0, 3)}
            for path, start, end in rows
        ]


@contextmanager
def serve(directory, port=0, overrides=None, log=None):
    """Serve directory on 127.0.0.1 in a thread; yields the base URL.

    overrides maps URL paths to bodies served instead of the files (tests use
    it to publish a new edition without rebuilding); log, a ServerLog, records
    every request with its timing.
    """
    attrs = {"overrides": overrides if overrides is not None else {}, "log": log}
    handler_class = type("Handler", (_Handler,), attrs)
    handler = functools.partial(handler_class, directory=str(directory))
    server = _Server(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class _RefuseHandler(socketserver.StreamRequestHandler):
    def handle(self):
        line = self.rfile.readline(8192).decode("latin-1").strip()
        if line:
            self.server.targets.append(line)
        self.wfile.write(
            b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )


class _RefuseServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass


@contextmanager
def refusing_proxy():
    """A proxy on 127.0.0.1 that answers every request with 502 and records its first line
    ("CONNECT host:443 HTTP/1.1", "GET http://host/ HTTP/1.1"): the network of the engines
    that are pointed at it, and the proof of what they tried to reach.  Yields (url, targets).
    """
    server = _RefuseServer(("127.0.0.1", 0), _RefuseHandler)
    server.targets = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.targets
    finally:
        server.shutdown()
        server.server_close()


def is_loopback(url):
    parts = urllib.parse.urlsplit(url)
    if parts.scheme in {"data", "blob", "about", "chrome-extension"}:
        return True
    return (parts.hostname or "") in LOOPBACK


class Requests:
    """Every URL requested by pages, workers and service workers, with a phase label."""

    def __init__(self):
        self.phase = ""
        self.seen = []  # (url, phase)

    def record(self, request):
        self.seen.append((request.url, self.phase))

    def outside_loopback(self):
        return [(url, phase) for url, phase in self.seen if not is_loopback(url)]


#: a phone's screen for Playwright's contexts (CSS pixels of an iPhone 14-class phone)
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 3,
    "is_mobile": True,
    "has_touch": True,
}


@contextmanager
def browser_context(playwright, **options):
    """A fresh Chromium profile with only loopback resolvable; yields (context, Requests).

    options: more of Playwright's context options (PHONE: a phone's screen).
    """
    with tempfile.TemporaryDirectory(prefix="microgpt-chromium-") as profile:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, **options
        )
        requests = Requests()
        context.on("request", requests.record)
        context.set_default_timeout(120_000)
        try:
            yield context, requests
        finally:
            context.close()


# JavaScript run in the page; window.jupyterapp needs exposeAppInBrowser.
JS_OPEN = """async (path) => {
  // The page opened the notebook from its ?path=; wait for that widget.
  const app = window.jupyterapp;
  await app.restored;
  // among the main area's panels (a page without focus has no currentWidget)
  const find = () => [...app.shell.widgets('main')].find(
    (w) => w.sessionContext && w.context && w.context.path === path);
  let widget = find();
  while (!widget) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    widget = find();
  }
  await widget.context.ready;
  await widget.sessionContext.ready;
  window.__nb = widget;
  return widget.content.model.cells.length;
}"""

JS_CELL_INFO = """() => {
  const cells = window.__nb.content.model.cells;
  const out = [];
  for (let i = 0; i < cells.length; i++) {
    const c = cells.get(i).toJSON();
    out.push({type: c.cell_type, source: Array.isArray(c.source) ? c.source.join('') : c.source,
              tags: (c.metadata && c.metadata.tags) || []});
  }
  return out;
}"""

JS_START_CELL = """(index) => {
  // Run one cell as a reader would; the outcome lands in window.__run.
  const app = window.jupyterapp;
  const nb = window.__nb;
  nb.content.activeCellIndex = index;
  nb.content.deselectAll();
  const t0 = performance.now();
  window.__run = {done: false};
  const finish = (ok, error) => {
    window.__run = {done: true, ok, ms: performance.now() - t0, error};
  };
  app.commands.execute('notebook:run-cell').then(
    (ok) => finish(ok, null), (err) => finish(false, String(err)));
}"""

JS_CELL = """(index) => window.__nb.content.model.cells.get(index).toJSON()"""

JS_EXECUTE = """async ([code, timeoutMs]) => {
  // Run code on the open notebook's kernel; collect its stream output.
  const kernel = window.__nb.sessionContext.session.kernel;
  const future = kernel.requestExecute({code, store_history: false});
  let text = '', error = null;
  future.onIOPub = (msg) => {
    const t = msg.header.msg_type;
    if (t === 'stream') text += msg.content.text;
    if (t === 'error') error = msg.content.ename + ': ' + msg.content.evalue;
  };
  const timeout = new Promise((_, reject) =>
    setTimeout(() => reject(new Error('timeout')), timeoutMs));
  await Promise.race([future.done, timeout]);
  return {text, error};
}"""


class Notebook:
    """One notebook open in its own page of the site."""

    def __init__(self, context, base_url, path, app="notebooks"):
        self.page = context.new_page()
        self.console = []
        self.fatal = ""  # Pyodide's fatal error: the kernel then stays busy forever
        self.page.on("console", lambda msg: self.console.append(f"{msg.type}: {msg.text}"))
        self.page.on("pageerror", lambda err: self.console.append(f"pageerror: {err}"))
        self.page.on("worker", lambda worker: worker.on("console", self._worker_console))
        started = time.monotonic()
        self.page.goto(f"{base_url}{app}/index.html?path={urllib.parse.quote(path)}")
        self.page.wait_for_function("() => window.jupyterapp !== undefined")
        self.ncells = self.page.evaluate(JS_OPEN, path)
        self.open_s = time.monotonic() - started

    def cells(self):
        return self.page.evaluate(JS_CELL_INFO)

    def _worker_console(self, msg):
        text = msg.text
        if "fatal error" in text or (self.fatal and self.fatal.count("\n") < 2):
            self.fatal = f"{self.fatal}\n{text.splitlines()[0]}" if self.fatal else text

    def run_cell(self, index, timeout_s):
        """Run cell index; stop waiting at the timeout or when Pyodide dies."""
        self.page.evaluate(JS_START_CELL, index)
        started = time.monotonic()
        deadline = started + timeout_s
        while True:
            self.page.wait_for_timeout(200)  # lets Playwright deliver worker console events
            run = self.page.evaluate("() => window.__run")
            if run["done"] or self.fatal or time.monotonic() > deadline:
                break
        run.setdefault("ms", 1000 * (time.monotonic() - started))
        run["timedOut"] = not run["done"] and not self.fatal
        run["fatal"] = self.fatal
        run["cell"] = self.page.evaluate(JS_CELL, index)
        return run

    def execute(self, code, timeout_s=300):
        return self.page.evaluate(JS_EXECUTE, [code, int(timeout_s * 1000)])

    def close(self):
        self.page.close()


def stream_text(outputs, name="stdout"):
    """All text a cell wrote to one stream, however it was chunked."""
    parts = []
    for out in outputs:
        if out.get("output_type") == "stream" and out.get("name") == name:
            text = out.get("text", "")
            parts.append("".join(text) if isinstance(text, list) else text)
    return "".join(parts)


def errors(outputs):
    return [
        f"{o.get('ename')}: {o.get('evalue')}" for o in outputs if o.get("output_type") == "error"
    ]


def load_notebook(path):
    return json.loads(path.read_text(encoding="utf-8"))
