// Start Pyodide from a memory snapshot made at build time (lite/pyodide_dist.py): about a
// second, where initializing Python takes 7-25 s on the project's test machine. Served as
// static/pyodide/boot.mjs. JupyterLite's kernel imports it as its `pyodideUrl` and calls
// loadPyodide(options): the kernel's snapshot (IPython imported) and its packages' files
// from one archive. The landing page's trainer calls startPython("python-snapshot.bin.gz",
// options). Where a snapshot or the archive cannot be had or used, Python starts the usual
// way and loads the packages itself.
import { loadPyodide as loadFresh, version } from "./pyodide.mjs";
import { untar } from "./untar.mjs";

export { version };

const here = (name) => new URL(name, import.meta.url);
const quiet = { messageCallback: () => {} };

async function gunzip(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

// The bytes of a site file, gunzipped when gzip-compressed (a host may already have undone
// the compression: Content-Encoding), or null.
async function fetchData(name) {
  if (typeof DecompressionStream === "undefined") return null;
  try {
    const response = await fetch(here(name));
    if (!response.ok) return null;
    const bytes = new Uint8Array(await response.arrayBuffer());
    return bytes[0] === 0x1f && bytes[1] === 0x8b ? await gunzip(bytes) : bytes;
  } catch (err) {
    console.warn(`${name} not loaded (${err}); starting Python without it`);
    return null;
  }
}

async function fetchJson(name) {
  try {
    const response = await fetch(here(name));
    return response.ok ? await response.json() : null;
  } catch {
    return null;
  }
}

// Pyodide restores a snapshot into the memory its module declares (480 pages of 64 KiB) and
// does not grow it first: a snapshot of a bigger interpreter (the kernel's, IPython imported)
// would not fit. So the first instance that exports a memory gets the pages it needs as
// soon as it is made, before Pyodide reads its memory.
async function withPages(pages, load) {
  const { instantiate, instantiateStreaming } = WebAssembly;
  let grown = false;
  const grow = (instance) => {
    const memory = instance && instance.exports.memory;
    if (!grown && memory instanceof WebAssembly.Memory) {
      grown = true;
      const have = memory.buffer.byteLength / 65536;
      if (have < pages) memory.grow(pages - have);
    }
  };
  WebAssembly.instantiateStreaming = async function (...args) {
    const result = await instantiateStreaming.apply(WebAssembly, args);
    grow(result.instance);
    return result;
  };
  WebAssembly.instantiate = async function (...args) {
    const result = await instantiate.apply(WebAssembly, args);
    grow(result instanceof WebAssembly.Instance ? result : result.instance);
    return result;
  };
  try {
    return await load();
  } finally {
    WebAssembly.instantiate = instantiate;
    WebAssembly.instantiateStreaming = instantiateStreaming;
  }
}

// Pyodide frees a garbage-collected PyProxy in a FinalizationRegistry callback, which needs the
// GIL. WebKitGTK also runs such callbacks inside a synchronous XMLHttpRequest made in a worker,
// not only as tasks of their own; the kernel reads every file of its folder (/drive) that way,
// from inside a system call for which CPython has released the GIL. The callback then throws
// NoGilError ("Attempted to use PyProxy when Python GIL not held") out of the worker: a page
// error, now and then (the JupyterLite kernel leaks a few PyProxies per message). So Pyodide's
// registry is made, while it loads, with a callback that waits for the GIL: a cleanup that
// comes while Python has released it runs in a later task, once Python holds the GIL again.
async function withGilSafeCleanup(load) {
  const Registry = globalThis.FinalizationRegistry;
  if (typeof Registry !== "function") return load();
  let module = null; // Pyodide's, once loaded: until then every cleanup runs at once
  const gilHeld = () => !module || module._PyGILState_Check() !== 0;
  globalThis.FinalizationRegistry = class extends Registry {
    constructor(cleanup) {
      const waiting = [];
      let scheduled = false;
      const retry = () => {
        scheduled = false;
        while (waiting.length && gilHeld()) cleanup(waiting.shift());
        if (waiting.length) schedule(10);
      };
      const schedule = (ms) => {
        if (!scheduled) setTimeout(retry, ms);
        scheduled = true;
      };
      super((held) => {
        if (gilHeld()) return cleanup(held);
        waiting.push(held);
        schedule(0);
      });
    }
  };
  let pyodide;
  try {
    pyodide = await load();
  } finally {
    globalThis.FinalizationRegistry = Registry;
  }
  if (typeof pyodide._module?._PyGILState_Check === "function") module = pyodide._module;
  return pyodide;
}

// the snapshot's header: [magic, offset of the memory, ...] (Pyodide's makeSnapshot)
function memoryPages(snapshot) {
  const offset = new Uint32Array(snapshot.buffer, snapshot.byteOffset, 2)[1];
  return Math.ceil((snapshot.length - offset) / 65536);
}

// Installed packages' files, as Pyodide's loader wrote them at build time, and their names
// (marked loaded, so that nothing installs them again)
function writeFiles(pyodide, files, listing) {
  const root = pyodide.runPython("import site; site.getsitepackages()[0]");
  untar(files, pyodide.FS, root);
  pyodide.runPython("import importlib; importlib.invalidate_caches()");
  for (const name of listing.packages) pyodide.loadedPackages[name] = "default channel";
}

// startPython(snapshot, options, files): Pyodide from `snapshot` (or started the usual way),
// with options.packages loaded. files: {archive, listing} (the names of a site-packages
// archive and of its listing), whose packages are written at once and whose listing's
// `later` ones are loaded in the background once Python is returned.
export async function startPython(snapshot, options = {}, files = null) {
  const [memory, archive, listing] = await Promise.all([
    snapshot ? fetchData(snapshot) : null,
    files ? fetchData(files.archive) : null,
    files ? fetchJson(files.listing) : null,
  ]);
  if (memory) {
    try {
      // `packages` with a snapshot never finishes loading in this Pyodide: loaded after
      const { packages = [], ...rest } = options;
      const pyodide = await withGilSafeCleanup(() =>
        withPages(memoryPages(memory), () => loadFresh({ ...rest, _loadSnapshot: memory })),
      );
      const later = listing ? listing.later : [];
      if (archive && listing) writeFiles(pyodide, archive, listing);
      const now = packages.filter((n) => !later.includes(n) && !pyodide.loadedPackages[n]);
      if (now.length) await pyodide.loadPackage(now, quiet);
      const deferred = packages.filter((n) => later.includes(n));
      if (deferred.length) {
        pyodide.loadPackage(deferred, quiet).catch((err) => {
          console.warn(`could not load ${deferred.join(", ")}: ${err}`);
        });
      }
      return pyodide;
    } catch (err) {
      console.warn(`Python snapshot ${snapshot} not usable (${err}); starting Python without it`);
    }
  }
  return withGilSafeCleanup(() => loadFresh(options));
}

// What the site adds to its kernel, as modules in site-packages that an IPython startup
// file installs when the kernel's shell starts: kernel_offline.py (numpy cells offline).
async function addKernelModules(pyodide) {
  const site = new URL("../../", import.meta.url).href;
  const modules = { kernel_offline: `install(${JSON.stringify(site)})` };
  const sitePackages = pyodide.runPython("import site; site.getsitepackages()[0]");
  const startup = "/home/pyodide/.ipython/profile_default/startup";
  const lines = [];
  for (const [name, call] of Object.entries(modules)) {
    const response = await fetch(here(`${name}.py`));
    if (!response.ok) continue;
    pyodide.FS.writeFile(`${sitePackages}/${name}.py`, await response.text());
    lines.push(`__import__("${name}").${call}\n`);
  }
  pyodide.FS.mkdirTree(startup);
  pyodide.FS.writeFile(`${startup}/00-site.py`, lines.join(""));
}

export async function loadPyodide(options = {}) {
  const files = {
    archive: "kernel-site-packages.tar.gz",
    listing: "kernel-site-packages.tar.gz.json",
  };
  const pyodide = await startPython("kernel-snapshot.bin.gz", options, files);
  await addKernelModules(pyodide);
  return pyodide;
}
