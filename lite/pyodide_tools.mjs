// Build-time work done by Pyodide itself, in node (lite/build_site.py runs it):
//
//   node pyodide_tools.mjs compile PYODIDE_DIR IN_DIR OUT_DIR
//     Every wheel of IN_DIR again in OUT_DIR with its modules compiled to bytecode (.pyc in
//     place of .py, as Pyodide's own CDN ships its pure-Python packages): in the browser,
//     importing IPython from source costs seconds of compiling on every start.
//   node pyodide_tools.mjs snapshot PYODIDE_DIR OUT_FILE WHEELS CODE
//     Start Pyodide from PYODIDE_DIR, unpack the WHEELS (comma-separated file names in
//     PYODIDE_DIR) into site-packages, run CODE, and write the interpreter's memory,
//     gzip-compressed, to OUT_FILE. The browser then starts Python from that memory
//     (`loadPyodide({_loadSnapshot})`) in about a second instead of initializing it (7-25 s on
//     this project's test machine, most of it in WebKit). The wheels are unpacked by Python,
//     not by loadPackage, which leaves JavaScript objects behind that a snapshot cannot hold;
//     in the browser, loadPyodide's `packages` puts the same files back.
//
// Bytecode and memory are those of the exact Pyodide build the site serves (the snapshot
// records its build id, and Pyodide refuses a snapshot of another build).
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { pathToFileURL } from "node:url";

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

const UNPACK = `
import importlib, os, site, zipfile
target = site.getsitepackages()[0]
for name in sorted(os.listdir("/wheels")):
    with zipfile.ZipFile(f"/wheels/{name}") as wheel:
        wheel.extractall(target)
    os.remove(f"/wheels/{name}")
importlib.invalidate_caches()
`;

async function snapshot(outFile, wheels, code) {
  const py = await loadPyodide({ indexURL: pyodideDir, _makeSnapshot: true });
  py.FS.mkdirTree("/wheels");
  for (const name of wheels ? wheels.split(",") : []) {
    py.FS.writeFile(`/wheels/${name}`, new Uint8Array(fs.readFileSync(path.join(pyodideDir, name))));
  }
  py.runPython(UNPACK);
  if (code) py.runPython(code);
  const memory = py.makeMemorySnapshot();
  const tmp = `${outFile}.tmp`;
  fs.writeFileSync(tmp, zlib.gzipSync(memory, { level: 9 }));
  fs.renameSync(tmp, outFile);
  console.log(`${path.basename(outFile)}: ${memory.length} bytes of memory`);
}

if (command === "compile") await compileWheels(rest[0], rest[1]);
else if (command === "snapshot") await snapshot(rest[0], rest[1], rest[2]);
else {
  console.error("usage: node pyodide_tools.mjs compile|snapshot PYODIDE_DIR ...");
  process.exit(2);
}
