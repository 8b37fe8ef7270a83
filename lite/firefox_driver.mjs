// Firefox ESR over WebDriver BiDi (puppeteer-core, no browser download), driven by
// lite/engines.py: one JSON command per line on stdin, one JSON answer per line on stdout.
//   {"id": 1, "cmd": "launch", "args": {"executable": "/usr/bin/firefox-esr", "proxy": "http://127.0.0.1:9"}}
//   {"id": 2, "cmd": "goto", "args": {"url": "http://127.0.0.1:8000/", "timeout_ms": 60000}}
//   {"id": 3, "cmd": "evaluate", "args": {"expression": "(async () => 1)()"}}
// Answers: {"id": 1, "ok": true, "result": ...} or {"id": 1, "ok": false, "error": "..."}.
import readline from "node:readline";
import puppeteer from "puppeteer-core";

let browser = null;
let page = null;
const consoleLines = [];

function proxyPrefs(proxy) {
  if (!proxy) return {};
  const { hostname, port } = new URL(proxy);
  return {
    "network.proxy.type": 1,
    "network.proxy.http": hostname,
    "network.proxy.http_port": Number(port),
    "network.proxy.ssl": hostname,
    "network.proxy.ssl_port": Number(port),
    "network.proxy.no_proxies_on": "localhost, 127.0.0.1",
    "network.proxy.allow_hijacking_localhost": false,
  };
}

function watch(p) {
  p.on("console", (msg) => consoleLines.push(`${msg.type()}: ${msg.text()}`));
  p.on("pageerror", (err) => consoleLines.push(`pageerror: ${err.message || err}`));
}

const handlers = {
  async launch({ executable, proxy, width = 1280, height = 900 }) {
    browser = await puppeteer.launch({
      browser: "firefox",
      protocol: "webDriverBiDi",
      executablePath: executable,
      headless: true,
      protocolTimeout: 900000,
      defaultViewport: { width, height },
      extraPrefsFirefox: {
        ...proxyPrefs(proxy),
        "browser.safebrowsing.update.enabled": false,
        "network.captive-portal-service.enabled": false,
        "network.connectivity-service.enabled": false,
      },
    });
    page = (await browser.pages())[0] || (await browser.newPage());
    watch(page);
    return browser.version();
  },
  async goto({ url, timeout_ms = 120000 }) {
    await page.goto(url, { timeout: timeout_ms, waitUntil: "load" });
    return page.url();
  },
  async evaluate({ expression }) {
    return page.evaluate(expression);
  },
  async viewport({ width, height }) {
    await page.setViewport({ width, height });
    return null;
  },
  async screenshot({ path }) {
    await page.screenshot({ path });
    return path;
  },
  async console() {
    return consoleLines.splice(0);
  },
  async close() {
    if (browser) await browser.close();
    browser = null;
    return null;
  },
};

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  const { id, cmd, args } = JSON.parse(line);
  let answer;
  try {
    const result = await handlers[cmd](args || {});
    answer = { id, ok: true, result: result === undefined ? null : result };
  } catch (err) {
    answer = { id, ok: false, error: String((err && err.message) || err) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
  if (cmd === "close") break;
}
if (browser) await browser.close();
