"""The three browser engines behind one small interface, for the site's tests and benchmark.

Chromium (Debian's) through Playwright; Firefox ESR through puppeteer-core over
WebDriver BiDi (lite/firefox_driver.mjs, a node process); WebKitGTK, Safari's engine,
through selenium and WebKitWebDriver, its MiniBrowser on a private Xvfb display.
Nothing here downloads a browser.  Each `open_session` is a fresh profile (a cold
cache), and every engine but Chromium (which makes other hostnames unresolvable, see
browser.CHROMIUM_ARGS) sends its non-loopback traffic to browser.refusing_proxy.

A Session has one page: `goto(url)`, `run(js_function, arg)` (an async function,
awaited in the page, its result returned as JSON), `screenshot(path)`, `console()`.
"""

import json
import os
import queue
import shutil
import subprocess
import threading
import time
import urllib.parse
from contextlib import contextmanager
from pathlib import Path

import browser

ENGINES = ("chromium", "firefox", "webkit")
LITE = Path(__file__).resolve().parent
FIREFOX = "/usr/bin/firefox-esr"
WEBKIT_DRIVER = "/usr/bin/WebKitWebDriver"
MINIBROWSER_DIRS = [
    "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1",
    "/usr/lib/aarch64-linux-gnu/webkit2gtk-4.1",
]
# Firefox's own services (remote settings, portal detection) call home whatever the page
# does; the proxy refuses them too, but they are not the site's requests.
FIREFOX_SERVICES = ("mozilla.com", "mozilla.net", "mozilla.org", "firefox.com")


class EngineError(RuntimeError):
    """A browser could not be started or driven; the message says which and why."""


def minibrowser():
    for folder in MINIBROWSER_DIRS:
        path = Path(folder) / "MiniBrowser"
        if path.is_file():
            return path
    return None


def missing(engine):
    """Why `engine` cannot run here (one line with the fix), or None when it can."""
    if engine == "chromium":
        if not Path(browser.CHROMIUM).exists():
            return f"{browser.CHROMIUM} not found; run: apt-get install -y chromium"
        try:
            import playwright  # noqa: F401
        except ImportError:
            return "playwright is not installed; run: pip install -e '.[site]'"
        return None
    if engine == "firefox":
        if not Path(FIREFOX).exists():
            return f"{FIREFOX} not found; run: apt-get install -y firefox-esr"
        if not shutil.which("node"):
            return "node not found; run: apt-get install -y nodejs npm"
        if not (LITE / "node_modules" / "puppeteer-core").is_dir():
            return "puppeteer-core is not installed; run: npm ci --prefix lite"
        return None
    if engine == "webkit":
        if not Path(WEBKIT_DRIVER).exists() or minibrowser() is None:
            return (
                "WebKitGTK's WebKitWebDriver not found; run: apt-get install -y webkit2gtk-driver"
            )
        if not shutil.which("Xvfb"):
            return "Xvfb not found; run: apt-get install -y xvfb"
        try:
            import selenium  # noqa: F401
        except ImportError:
            return "selenium is not installed; run: pip install -e '.[site]'"
        return None
    raise ValueError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")


def call(fn, arg=None):
    """A JS expression that calls the function source `fn` with the JSON value `arg`."""
    return f"({fn})({json.dumps(arg)})"


class Session:
    """One fresh browser profile with one page."""

    engine = ""

    def goto(self, url, timeout_s=120):
        raise NotImplementedError

    def evaluate(self, expression, timeout_s=300):
        raise NotImplementedError

    def run(self, fn, arg=None, timeout_s=300):
        """Await the async function source `fn` called with `arg`; its JSON result."""
        return self.evaluate(call(fn, arg), timeout_s)

    def wait_for(self, fn, arg=None, timeout_s=120, interval_s=0.05):
        """Poll `fn` (a function returning a JSON value) until it is truthy: (value, seconds).

        Errors while the page navigates count as "not yet".
        """
        started = time.monotonic()
        while True:
            try:
                value = self.run(fn, arg, timeout_s=30)
            except Exception:  # the page is between documents
                value = None
            if value:
                return value, time.monotonic() - started
            if time.monotonic() - started > timeout_s:
                raise EngineError(f"{self.engine}: no result within {timeout_s:.0f} s")
            time.sleep(interval_s)

    def screenshot(self, path):
        raise NotImplementedError

    def console(self):
        """Console lines collected since the last call ("error: ...", "pageerror: ...")."""
        return []


# --- Chromium (Playwright) ---------------------------------------------------------


class ChromiumSession(Session):
    engine = "chromium"

    def __init__(self, context, requests):
        self.context = context
        self.requests = requests
        self.page = context.pages[0] if context.pages else context.new_page()
        self._console = []
        self.page.on("console", lambda m: self._console.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self._console.append(f"pageerror: {e}"))
        self.page.on(
            "worker",
            lambda w: w.on("console", lambda m: self._console.append(f"worker {m.type}: {m.text}")),
        )

    def goto(self, url, timeout_s=120):
        self.page.goto(url, timeout=timeout_s * 1000)

    def evaluate(self, expression, timeout_s=300):
        return self.page.evaluate(expression)

    def set_viewport(self, width, height):
        self.page.set_viewport_size({"width": width, "height": height})

    def screenshot(self, path):
        self.page.screenshot(path=str(path))

    def console(self):
        lines, self._console = self._console, []
        return lines

    def outside(self):
        return [url for url, _ in self.requests.outside_loopback()]


# --- Firefox (puppeteer-core over WebDriver BiDi) -----------------------------------


class FirefoxSession(Session):
    engine = "firefox"

    def __init__(self, proxy, targets, width=1280, height=900):
        self.targets = targets
        self.proc = subprocess.Popen(
            ["node", str(LITE / "firefox_driver.mjs")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, cwd=LITE,
        )  # fmt: skip
        self._id = 0
        self._stderr = []
        self._answers = queue.Queue()
        threading.Thread(target=self._drain, daemon=True).start()
        threading.Thread(target=self._read, daemon=True).start()
        self.version = self._send("launch", executable=FIREFOX, proxy=proxy, width=width,
                                  height=height, timeout_s=120)  # fmt: skip

    def _drain(self):
        for line in self.proc.stderr:
            self._stderr.append(line.rstrip())

    def _read(self):
        for line in self.proc.stdout:
            self._answers.put(json.loads(line))

    def _send(self, cmd, timeout_s=300, **args):
        self._id += 1
        try:
            self.proc.stdin.write(json.dumps({"id": self._id, "cmd": cmd, "args": args}) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise EngineError(f"firefox driver exited: {' | '.join(self._stderr[-5:])}") from None
        deadline = time.monotonic() + timeout_s
        while True:  # skip the late answers of commands that timed out
            try:
                reply = self._answers.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise EngineError(f"firefox: no answer to {cmd} in {timeout_s:.0f} s "
                                  f"({' | '.join(self._stderr[-5:])})") from None  # fmt: skip
            if reply["id"] == self._id:
                break
        if not reply["ok"]:
            raise EngineError(f"firefox {cmd}: {reply['error']}")
        return reply["result"]

    def goto(self, url, timeout_s=120):
        self._send("goto", url=url, timeout_ms=int(timeout_s * 1000), timeout_s=timeout_s + 10)

    def evaluate(self, expression, timeout_s=300):
        return self._send("evaluate", expression=expression, timeout_s=timeout_s)

    def set_viewport(self, width, height):
        self._send("viewport", width=width, height=height)

    def screenshot(self, path):
        self._send("screenshot", path=str(path))

    def console(self):
        return self._send("console")

    def outside(self):
        return [t for t in self.targets if not _host(t).endswith(FIREFOX_SERVICES)]

    def close(self):
        try:
            self._send("close", timeout_s=30)
        except EngineError:
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _host(request_line):
    """The host a proxy request line names ("CONNECT h:443 HTTP/1.1", "GET http://h/ ...")."""
    target = (request_line.split() + ["", ""])[1]
    return urllib.parse.urlsplit(target if "://" in target else f"//{target}").hostname or ""


# --- WebKitGTK (selenium + WebKitWebDriver, MiniBrowser on Xvfb) -----------------


# WebKitWebDriver reports no console: each script first makes sure the document records
# its console errors, uncaught errors and unhandled rejections (`console()` reads them).
# What a document logs before the first script that runs in it, or in a worker, is missed.
CONSOLE_HOOK = """if (!window.__engineConsole) {
  const lines = (window.__engineConsole = []);
  const text = (value) => String((value && value.stack) || value);
  const error = console.error.bind(console);
  console.error = (...args) => {
    lines.push('error: ' + args.map(text).join(' '));
    error(...args);
  };
  addEventListener('error', (e) => lines.push('pageerror: ' + (e.message || text(e.error))));
  addEventListener('unhandledrejection', (e) => lines.push('pageerror: ' + text(e.reason)));
}
"""
ASYNC_WRAPPER = (
    CONSOLE_HOOK
    + """const done = arguments[arguments.length - 1];
Promise.resolve().then(() => EXPR).then(
  (value) => done({ok: true, value: value === undefined ? null : value}),
  (err) => done({ok: false, error: String((err && err.stack) || err)}));"""
)


class WebKitSession(Session):
    engine = "webkit"

    def __init__(self, proxy, targets, display, width=1280, height=900):
        from selenium import webdriver
        from selenium.webdriver.webkitgtk.options import Options
        from selenium.webdriver.webkitgtk.service import Service

        self.targets = targets
        options = Options()
        options.binary_location = str(minibrowser())
        options.add_argument("--automation")
        if proxy:
            options.add_argument(f"--proxy={proxy}")
            for host in ("localhost", "127.0.0.1"):
                options.add_argument(f"--ignore-host={host}")
        env = dict(os.environ, DISPLAY=display)
        service = Service(executable_path=WEBKIT_DRIVER, env=env)
        self.driver = webdriver.WebKitGTK(options=options, service=service)
        self.driver.set_page_load_timeout(120)
        self.driver.set_window_size(width, height)
        self.version = self.driver.capabilities.get("browserVersion", "")

    def goto(self, url, timeout_s=120):
        self.driver.set_page_load_timeout(timeout_s)
        self.driver.get(url)

    def evaluate(self, expression, timeout_s=300):
        self.driver.set_script_timeout(timeout_s)
        reply = self.driver.execute_async_script(ASYNC_WRAPPER.replace("EXPR", expression))
        if not reply["ok"]:
            raise EngineError(f"webkit: {reply['error']}")
        return reply["value"]

    def set_viewport(self, width, height):
        self.driver.set_window_size(width, height)

    def screenshot(self, path):
        self.driver.save_screenshot(str(path))

    def console(self):
        return self.driver.execute_script(CONSOLE_HOOK + "return window.__engineConsole.splice(0);")

    def outside(self):
        return list(self.targets)

    def close(self):
        self.driver.quit()


@contextmanager
def xvfb():
    """A private X display for MiniBrowser, which has no headless mode: yields ':N'."""
    read, write = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", "1600x1200x24", "-nolisten", "tcp"],
        pass_fds=(write,), stderr=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(write)
    with os.fdopen(read) as pipe:
        number = pipe.readline().strip()
    if not number:
        proc.kill()
        raise EngineError("Xvfb did not start")
    try:
        yield f":{number}"
    finally:
        proc.terminate()
        proc.wait()


# --- sessions -------------------------------------------------------------------------


@contextmanager
def open_session(engine, playwright=None, width=1280, height=900, phone=False):
    """A fresh profile of `engine` with only loopback reachable; yields a Session.

    playwright: a running sync Playwright, for Chromium (one per thread); phone: Chromium
    as a phone (browser.PHONE: 390 x 844 CSS pixels, touch) instead of width x height.
    """
    reason = missing(engine)
    if reason:
        raise EngineError(reason)
    if phone and engine != "chromium":
        raise EngineError(f"{engine}: phone screens are emulated in Chromium only")
    if engine == "chromium":
        options = browser.PHONE if phone else {"viewport": {"width": width, "height": height}}
        with (
            _playwright(playwright) as pw,
            browser.browser_context(pw, **options) as (context, requests),
        ):
            session = ChromiumSession(context, requests)
            session.version = context.browser.version if context.browser else ""
            yield session
        return
    with browser.refusing_proxy() as (proxy, targets):
        if engine == "firefox":
            session = FirefoxSession(proxy, targets, width, height)
            try:
                yield session
            finally:
                session.close()
            return
        with xvfb() as display:
            session = WebKitSession(proxy, targets, display, width, height)
            try:
                yield session
            finally:
                session.close()


@contextmanager
def _playwright(running):
    if running is not None:
        yield running
        return
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw
