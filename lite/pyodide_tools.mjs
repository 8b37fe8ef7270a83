// Build-time work done by Pyodide itself, in node (lite/build_site.py runs it):
//
//   node pyodide_tools.mjs compile PYODIDE_DIR IN_DIR OUT_DIR
//     Every wheel of IN_DIR again in OUT_DIR with its modules compiled to bytecode (.pyc in
//     place of .py, as Pyodide's own CDN ships its pure-Python packages): in the browser,
//     importing IPython from source costs seconds of compiling on every start.
//   node pyodide_tools.mjs sitepackages PYODIDE_DIR OUT_FILE PACKAGES
//     Install the lock's PACKAGES (comma-separated) with Pyodide's own loader and write its
//     site-packages, as a gzip-compressed ustar archive, to OUT_FILE, and the names of the
//     packages it holds to OUT_FILE.json. The browser writes those files in one go
//     (pyodide-untar.mjs) instead of unpacking each wheel.
//   node pyodide_tools.mjs snapshot PYODIDE_DIR OUT_FILE ARCHIVE CODE
//     Start Pyodide from PYODIDE_DIR, write the files of ARCHIVE (a sitepackages archive, or
//     "") into site-packages as the browser will, run CODE, and write the interpreter's
//     memory, gzip-compressed, to OUT_FILE. The browser then starts Python from that memory
//     (`loadPyodide({_loadSnapshot})`) in about a second instead of initializing it (7-25 s on
//     this project's test machine, most of it in WebKit). (loadPackage would leave JavaScript
//     objects behind that a snapshot cannot hold: the archive is written by untar.)
//
// Bytecode and memory are those of the exact Pyodide build the site serves (the snapshot
// records its build id, and Pyodide refuses a snapshot of another build).
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { pathToFileURL } from "node:url";
import { untar } from "./pyodide-untar.mjs";

const [command, pyodideDir, ...rest] = process.argv.slice(2);
const { loadPyodide } = await import(pathToFileURL(path.join(pyodideDir, "pyodide.mjs")).href);

const COMPILE = `
import base64, hashlib, importlib.util, marshal, os, zipfile

def pyc(source, name):
    code = compile(source, name, "exec", dont_inherit=True)
    # unchecked-hash header (PEP 552): no source to compare with
    return importlib.util.MAGIC_NUMBER + (1).to_bytes(4, "little") + bytes(8) + marshal.dumps(code)

def record_row(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"

def compile_wheel(src, dst):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        rows, record = [], None
        for info in zin.infolist():
            name, data = info.filename, zin.read(info)
            if name.endswith(".dist-info/RECORD"):
                record = name
                continue
            if name.endswith(".py") and ".data/" not in name.split("/")[0]:
                try:
                    data, name = pyc(data, name), name + "c"
                except SyntaxError:  # a template or a file for another Python: keep the source
                    pass
            out = zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0))
            out.compress_type = zipfile.ZIP_DEFLATED
            out.external_attr = info.external_attr
            zout.writestr(out, data)
            rows.append(record_row(name, data))
        if record:
            zout.writestr(record, "\\n".join(rows + [f"{record},,"]) + "\\n")

for name in sorted(os.listdir("/in")):
    if name.endswith(".whl"):
        compile_wheel(f"/in/{name}", f"/out/{name}")
`;

async function compileWheels(inDir, outDir) {
  const py = await loadPyodide({ indexURL: pyodideDir });
  py.FS.mkdirTree("/in");
  py.FS.mkdirTree("/out");
  for (const name of fs.readdirSync(inDir).filter((n) => n.endsWith(".whl"))) {
    py.FS.writeFile(`/in/${name}`, new Uint8Array(fs.readFileSync(path.join(inDir, name))));
  }
  py.runPython(COMPILE);
  fs.mkdirSync(outDir, { recursive: true });
  for (const name of py.FS.readdir("/out").filter((n) => n.endsWith(".whl"))) {
    fs.writeFileSync(path.join(outDir, name), py.FS.readFile(`/out/${name}`));
  }
}

const TAR = `
import io, site, tarfile
root = site.getsitepackages()[0]
buffer = io.BytesIO()
with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
    tar.add(root, arcname="", recursive=True, filter=lambda info: None if "__pycache__" in info.name else info)
buffer.getvalue()
`;

async function sitePackages(outFile, packages) {
  const names = packages.split(",");
  const py = await loadPyodide({ indexURL: pyodideDir, packages: names });
  const proxy = py.runPython(TAR);
  const tar = proxy.toJs();
  proxy.destroy();
  write(outFile, zlib.gzipSync(tar, { level: 9 }));
  write(`${outFile}.json`, JSON.stringify({ packages: Object.keys(py.loadedPackages).sort() }));
  console.log(`${path.basename(outFile)}: ${tar.length} bytes of files`);
}

async function snapshot(outFile, archive, code) {
  const py = await loadPyodide({ indexURL: pyodideDir, _makeSnapshot: true });
  if (archive) {
    const root = py.runPython("import site; site.getsitepackages()[0]");
    untar(new Uint8Array(zlib.gunzipSync(fs.readFileSync(archive))), py.FS, root);
    py.runPython("import importlib; importlib.invalidate_caches()");
  }
  if (code) py.runPython(code);
  // importlib.metadata keeps /lib/python314.zip open (a ZipFile in its path cache): dropped
  // later in the browser, where the file descriptor is gone, its close logged "Exception
  // ignored ... OSError: [Errno 8] Bad file descriptor" under a reader's cell. Close it here.
  py.runPython("import gc, importlib; importlib.invalidate_caches(); gc.collect()");
  const memory = py.makeMemorySnapshot();
  write(outFile, zlib.gzipSync(memory, { level: 9 }));
  console.log(`${path.basename(outFile)}: ${memory.length} bytes of memory`);
}

function write(file, data) {
  fs.writeFileSync(`${file}.tmp`, data);
  fs.renameSync(`${file}.tmp`, file);
}

if (command === "compile") await compileWheels(rest[0], rest[1]);
else if (command === "sitepackages") await sitePackages(rest[0], rest[1]);
else if (command === "snapshot") await snapshot(rest[0], rest[1], rest[2]);
else {
  console.error("usage: node pyodide_tools.mjs compile|sitepackages|snapshot PYODIDE_DIR ...");
  process.exit(2);
}
