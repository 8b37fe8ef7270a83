// Start Pyodide from a memory snapshot made at build time (lite/pyodide_dist.py): about a
// second, where initializing Python takes 7-25 s on the project's test machine. Served as
// static/pyodide/boot.mjs; JupyterLite's kernel imports it as its `pyodideUrl` and calls
// loadPyodide(options) (the kernel's snapshot); the landing page's trainer calls
// startPython("python-snapshot.bin.gz", options). Where a snapshot cannot be had or used,
// Python starts the usual way.
import { loadPyodide as loadFresh, version } from "./pyodide.mjs";

export { version };

async function gunzip(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function fetchSnapshot(name) {
  if (typeof DecompressionStream === "undefined") return null;
  try {
    const response = await fetch(new URL(name, import.meta.url));
    if (!response.ok) return null;
    const bytes = new Uint8Array(await response.arrayBuffer());
    // a host may already have undone the gzip (Content-Encoding): then it is the memory itself
    return bytes[0] === 0x1f && bytes[1] === 0x8b ? await gunzip(bytes) : bytes;
  } catch (err) {
    console.warn(`Python snapshot ${name} not loaded (${err}); starting Python without it`);
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

// the snapshot's header: [magic, offset of the memory, ...] (Pyodide's makeSnapshot)
function memoryPages(snapshot) {
  const offset = new Uint32Array(snapshot.buffer, snapshot.byteOffset, 2)[1];
  return Math.ceil((snapshot.length - offset) / 65536);
}

// startPython(snapshot, options, later): `later` are packages loaded after Python is returned,
// in the background (jedi: only completions need it, and its 2,000 files take a second).
export async function startPython(snapshot, options = {}, later = []) {
  const memory = snapshot ? await fetchSnapshot(snapshot) : null;
  if (memory) {
    try {
      // `packages` with a snapshot never finishes loading in this Pyodide: load them after
      const { packages = [], ...rest } = options;
      const pyodide = await withPages(memoryPages(memory), () =>
        loadFresh({ ...rest, _loadSnapshot: memory }),
      );
      const now = packages.filter((name) => !later.includes(name));
      if (now.length) await pyodide.loadPackage(now, { messageCallback: () => {} });
      const deferred = packages.filter((name) => later.includes(name));
      if (deferred.length) {
        pyodide.loadPackage(deferred, { messageCallback: () => {} }).catch((err) => {
          console.warn(`could not load ${deferred.join(", ")}: ${err}`);
        });
      }
      return pyodide;
    } catch (err) {
      console.warn(`Python snapshot ${snapshot} not usable (${err}); starting Python without it`);
    }
  }
  return loadFresh(options);
}

// The kernel's offline notes (kernel_offline.py): a module in site-packages and the IPython
// startup file that installs it when the kernel's shell starts.
async function addOfflineNotes(pyodide) {
  const response = await fetch(new URL("kernel_offline.py", import.meta.url));
  if (!response.ok) return;
  const site = new URL("../../", import.meta.url).href;
  const { FS } = pyodide;
  const startup = "/home/pyodide/.ipython/profile_default/startup";
  const sitePackages = pyodide.runPython("import site; site.getsitepackages()[0]");
  FS.writeFile(`${sitePackages}/kernel_offline.py`, await response.text());
  FS.mkdirTree(startup);
  FS.writeFile(`${startup}/00-offline.py`, `__import__("kernel_offline").install(${JSON.stringify(site)})\n`);
}

export async function loadPyodide(options = {}) {
  const pyodide = await startPython("kernel-snapshot.bin.gz", options, ["jedi", "parso"]);
  await addOfflineNotes(pyodide);
  return pyodide;
}
