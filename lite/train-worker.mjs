// The landing page's training: Pyodide in a Web Worker, the microgpt package from this site.
// No JupyterLab, no IPython: Python starts, imports microgpt and trains with microgpt.train.Run,
// the same code as `python -m microgpt`, so the losses and the names are CPython's.
//
// Messages in:  {type: "train", stage, steps, seed, temperature, samples}, {type: "stop"}
// Messages out: {type: "status", text}, {type: "start", docs, vocab, params, stage},
//               {type: "losses", start, values}, {type: "name", index, name},
//               {type: "done", stopped, steps, ms}, {type: "error", message}
import { startPython } from "./static/pyodide/boot.mjs";

const SITE = new URL("./", import.meta.url);

// The glue between the page and the package: a run, stepped in chunks from JavaScript so
// that the worker can read a Stop between them. Training itself is microgpt.train.Run.
const GLUE = `
import itertools
from microgpt import stages
from microgpt.data import load_dataset
from microgpt.sampling import iter_names
from microgpt.train import Run


class LiveRun:
    def __init__(self, stage, steps, seed):
        self.run = Run(load_dataset("input.txt").docs, stages.load(stage), seed)
        self.steps = self.run.train(steps)
        self.names = None

    def info(self):
        run = self.run
        return [len(run.docs), run.tokenizer.vocab_size, run.model.num_params]

    def take(self, count):
        """The losses of the next \`count\` steps (fewer at the end)."""
        return [loss for _, loss in itertools.islice(self.steps, count)]

    def next_name(self, samples, temperature):
        if self.names is None:
            self.names = iter_names(self.run.model, self.run.tokenizer, self.run.rng, samples, temperature)
        return next(self.names, None)
`;

let python = null; // a promise of Pyodide with microgpt importable
let stopRequested = false;
let busy = false;

function post(message) {
  self.postMessage(message);
}

async function fetchBytes(path) {
  const response = await fetch(new URL(path, SITE));
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

async function boot() {
  post({ type: "status", text: "Starting Python (Pyodide)…" });
  const files = Promise.all([fetchBytes("microgpt.zip"), fetchBytes("files/input.txt")]);
  // from the snapshot of a started Python (boot.mjs), about a second instead of several
  const pyodide = await startPython("python-snapshot.bin.gz", {
    indexURL: new URL("static/pyodide/", SITE).href,
  });
  const [pkg, names] = await files;
  const home = "/home/pyodide";
  pyodide.unpackArchive(pkg, "zip", { extractDir: home });
  pyodide.FS.writeFile(`${home}/input.txt`, names);
  pyodide.runPython(`import os, sys; os.chdir("${home}"); sys.path.insert(0, "${home}")`);
  pyodide.runPython(GLUE);
  return pyodide;
}

// A zero-delay yield to the event loop, so that a "stop" message is read between chunks
// (setTimeout(0) is clamped to 4 ms after a few nested calls).
const channel = new MessageChannel();
const waiting = [];
channel.port1.onmessage = () => waiting.shift()();
function yieldToEvents() {
  return new Promise((resolve) => {
    waiting.push(resolve);
    channel.port2.postMessage(null);
  });
}

function pyList(proxy) {
  try {
    return proxy.toJs();
  } finally {
    proxy.destroy();
  }
}

async function train({ stage, steps, seed, temperature, samples }) {
  const started = performance.now();
  python = python || boot();
  let pyodide;
  try {
    pyodide = await python;
  } catch (err) {
    python = null; // the next click tries again
    throw err;
  }
  const ms = { python: performance.now() - started };
  if (stage === "tensor") {
    post({ type: "status", text: "Loading numpy from Pyodide's CDN…" });
    try {
      await pyodide.loadPackage("numpy", { messageCallback: () => {}, errorCallback: () => {} });
      pyodide.runPython("import numpy");
    } catch (err) {
      throw new Error(
        "the tensor stage needs numpy, which loads from Pyodide's CDN and could not be " +
          "reached (offline?); the pure-Python stages run offline",
      );
    }
  }
  post({ type: "status", text: `Preparing ${stage}…` });
  const LiveRun = pyodide.globals.get("LiveRun");
  const live = LiveRun(stage, steps, seed);
  LiveRun.destroy();
  try {
    const [docs, vocab, params] = pyList(live.info());
    post({ type: "start", docs, vocab, params, stage });
    ms.prepare = performance.now() - started - ms.python;
    let done = 0;
    let chunk = 1; // the first loss as soon as it exists, then about 40 ms of steps at a time
    while (done < steps && !stopRequested) {
      const t0 = performance.now();
      const values = pyList(live.take(chunk));
      post({ type: "losses", start: done, values });
      done += values.length;
      const elapsed = performance.now() - t0;
      chunk = Math.max(1, Math.min(200, Math.round((chunk * 40) / Math.max(elapsed, 1))));
      await yieldToEvents();
    }
    ms.train = performance.now() - started - ms.python - ms.prepare;
    for (let index = 0; index < samples && !stopRequested; index++) {
      const name = live.next_name(samples, temperature);
      if (name === undefined || name === null) break;
      post({ type: "name", index, name });
      await yieldToEvents();
    }
    ms.sample = performance.now() - started - ms.python - ms.prepare - ms.train;
    post({ type: "done", stopped: stopRequested, steps: done, ms });
  } finally {
    live.destroy();
  }
}

self.onmessage = async (event) => {
  const message = event.data;
  if (message.type === "stop") {
    stopRequested = busy;
    return;
  }
  if (message.type !== "train" || busy) return;
  busy = true;
  stopRequested = false;
  try {
    await train(message);
  } catch (err) {
    // a Python error's message ends with its last line ("StageError: ..."): show that line
    const text = String((err && err.message) || err).trim().split("\n").pop();
    post({ type: "error", message: text });
  } finally {
    busy = false;
  }
};
