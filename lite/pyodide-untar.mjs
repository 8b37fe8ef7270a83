// Write a tar archive (ustar: what lite/pyodide_tools.mjs makes) into Pyodide's file system.
// The kernel's packages arrive this way as one archive of the files Pyodide's own installer
// wrote at build time: about a tenth of the time that unpacking their 20 wheels takes in the
// browser (Python's zipfile, file by file, in WebAssembly). Served as static/pyodide/untar.mjs.
const BLOCK = 512;

export function untar(bytes, FS, root) {
  const text = new TextDecoder();
  const field = (at, length) => {
    const raw = bytes.subarray(at, at + length);
    const end = raw.indexOf(0);
    return text.decode(end < 0 ? raw : raw.subarray(0, end));
  };
  const made = new Set();
  const mkdir = (path) => {
    if (!made.has(path)) {
      FS.mkdirTree(path);
      made.add(path);
    }
  };
  let files = 0;
  for (let at = 0; at + BLOCK <= bytes.length; ) {
    const name = field(at, 100);
    if (!name) break; // the two empty blocks at the end
    const size = parseInt(field(at + 124, 12).trim() || "0", 8);
    const type = String.fromCharCode(bytes[at + 156]);
    const prefix = field(at + 345, 155);
    const path = `${root}/${prefix ? `${prefix}/` : ""}${name}`.replace(/\/+$/, "");
    at += BLOCK;
    if (type === "5") {
      mkdir(path);
    } else if (type === "0" || type === "\0") {
      mkdir(path.slice(0, path.lastIndexOf("/")));
      FS.writeFile(path, bytes.subarray(at, at + size));
      files++;
    } else {
      throw new Error(`untar: entry ${path} of type ${JSON.stringify(type)} is not supported`);
    }
    at += Math.ceil(size / BLOCK) * BLOCK;
  }
  return files;
}
