// Run Python code in the site's Pyodide, in node, with a package and a names file:
//
//   node measure_collector.mjs PYODIDE_DIR PACKAGE_DIR NAMES_FILE CODE
//
// The files of PACKAGE_DIR (no __pycache__) go to /src/<its name>, NAMES_FILE to
// /data/names.txt (MICROGPT_DATA points there), and CODE runs with /src first on sys.path.
// What CODE prints comes out on stdout. lite/measure_collector.py runs it: chapter 11's
// collector figures in the browser's Python.
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [pyodideDir, packageDir, namesFile, code] = process.argv.slice(2);
if (!code) {
  console.error("usage: node measure_collector.mjs PYODIDE_DIR PACKAGE_DIR NAMES_FILE CODE");
  process.exit(2);
}
const { loadPyodide } = await import(pathToFileURL(path.join(pyodideDir, "pyodide.mjs")).href);
const py = await loadPyodide({
  indexURL: `${path.resolve(pyodideDir)}/`,
  env: { MICROGPT_DATA: "/data/names.txt", HOME: "/home/pyodide" },
  stdout: (line) => console.log(line),
  stderr: (line) => console.error(line),
});

function copyTree(from, to) {
  py.FS.mkdirTree(to);
  for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
    if (entry.name === "__pycache__") continue;
    const source = path.join(from, entry.name);
    if (entry.isDirectory()) copyTree(source, `${to}/${entry.name}`);
    else if (entry.isFile()) py.FS.writeFile(`${to}/${entry.name}`, fs.readFileSync(source));
  }
}

copyTree(packageDir, `/src/${path.basename(path.resolve(packageDir))}`);
py.FS.mkdirTree("/data");
py.FS.writeFile("/data/names.txt", fs.readFileSync(namesFile));
py.runPython("import sys; sys.path.insert(0, '/src'); sys.dont_write_bytecode = True");
py.runPython(code);
