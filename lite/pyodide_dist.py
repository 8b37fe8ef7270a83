"""The site's own Pyodide: core files, every wheel the kernel starts with, and two snapshots.

Pyodide's core comes from npm, the pure-Python wheels from PyPI (and the kernel's own
from jupyterlite-pyodide-kernel), all cached in the build's download cache.  The wheels
are compiled to bytecode by Pyodide itself (lite/pyodide_tools.mjs, in node) and listed
in the served lock with their hashes, so the kernel loads them all at once, in parallel
with Python's start, instead of one micropip install after the other.  Two memory
snapshots let the browser skip Python's initialization: `python-snapshot.bin.gz` (Python
started: the landing page's trainer) and `kernel-snapshot.bin.gz` (IPython and the
kernel's packages imported: JupyterLite).  `boot.mjs` starts Python from them, and from
scratch where a snapshot cannot be used.

Only numpy, matplotlib and the rest of Pyodide's packages keep their CDN URLs.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from importlib import metadata
from pathlib import Path

LITE = Path(__file__).resolve().parent
TOOLS = LITE / "pyodide_tools.mjs"
#: served in static/pyodide/ (site name: lite/ source), for the kernel and the trainer
SERVED = {
    "boot.mjs": LITE / "pyodide-boot.mjs",
    "untar.mjs": LITE / "pyodide-untar.mjs",
    "kernel_offline.py": LITE / "kernel_offline.py",  # boot.mjs installs it in the kernel
}

#: packages the kernel loads from the Pyodide lock at boot (plus their deps)
BOOT_PACKAGES = ["micropip", "ipython", "jedi"]
#: Pyodide core files the site serves itself
CORE = [
    "pyodide.mjs",
    "pyodide.asm.mjs",
    "pyodide.asm.wasm",
    "python_stdlib.zip",
    "pyodide.js",
    "package.json",
]
#: wheels the kernel installs with piplite, shipped by jupyterlite-pyodide-kernel
KERNEL_EXTENSION_WHEELS = ["piplite", "pyodide_kernel", "ipykernel"]
#: packages added to the lock (name: (depends, imports)); their wheels are served locally
ADDED = {
    "piplite": (["micropip"], ["piplite"]),
    "pyodide-kernel": (["ipykernel", "comm", "ipython"], ["pyodide_kernel"]),
    "ipykernel": ([], ["ipykernel"]),  # (needs pyodide-kernel, which depends on it: no cycle)
    "comm": ([], ["comm"]),
    "ipywidgets": (["comm", "ipython", "traitlets"], ["ipywidgets"]),
}
#: from PyPI (pinned): comm; ipywidgets matches the site's jupyterlab_widgets (see site extra)
PYPI_ADDED = ["comm==0.2.3", "ipywidgets"]
#: what JupyterLite's kernel gets at start (loadPyodideOptions.packages): all in one go,
#: so it installs nothing one by one (it skips its piplite installs for these)
KERNEL_PACKAGES = ["micropip", "piplite", "pyodide-kernel", "ipykernel", "comm", "ipython", "jedi",
                   "ipywidgets"]  # fmt: skip
#: loaded in the background once the kernel runs (only completions need them): the rest
#: of KERNEL_PACKAGES arrive as one archive of installed files, KERNEL_FILES
KERNEL_LATER = ["jedi", "parso"]
KERNEL_FILES = "kernel-site-packages.tar.gz"
#: imported before the kernel's snapshot is taken: what `import pyodide_kernel` imports,
#: but not pyodide_kernel itself (it holds references to the page's JavaScript objects),
#: and the standard library that the kernel's `import piplite.piplite` pulls in (through
#: micropip, which holds JavaScript objects too): less Python to run at a cold start
#: (lite/README.md, "A fast kernel start", has what each part of a start costs)
KERNEL_IMPORTS = (
    "import comm, IPython, IPython.core.completer, IPython.core.interactiveshell, "
    "IPython.core.shellapp, IPython.core.application, IPython.core.history, "
    "IPython.core.inputtransformer2, IPython.display, traitlets.config, unittest.mock, "
    "html.parser"
)
#: name: (archive of files written first, code run before the memory is taken)
SNAPSHOTS = {
    "python-snapshot.bin.gz": ("", ""),
    "kernel-snapshot.bin.gz": (KERNEL_FILES, KERNEL_IMPORTS),
}


def log(msg):
    print(f"[site] {msg}", flush=True)


def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def sha256_file(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def run(cmd, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"error: command failed: {' '.join(map(str, cmd))} (see output above)")
    return proc


def node():
    found = shutil.which("node")
    if not found:
        raise SystemExit("error: node not found; install Node.js and npm to build the site")
    return found


def fetch_pyodide(version, cache):
    """The npm tarball of Pyodide's core files (cached)."""
    tgz = cache / f"pyodide-{version}.tgz"
    if not tgz.is_file():
        log(f"fetching pyodide@{version} with npm")
        if not shutil.which("npm"):
            raise SystemExit("error: npm not found; install Node.js and npm to build the site")
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            run(["npm", "pack", f"pyodide@{version}", "--pack-destination", tmp], cwd=tmp)
            os.replace(Path(tmp) / tgz.name, tgz)
    return tgz


def fetch_wheel(spec, dest, cache):
    """One py3-none-any wheel from PyPI (cached), for Python 3.14."""
    name, version = spec.split("==")
    stem = "[-_.]".join(re.escape(part) for part in norm(name).split("-"))
    pattern = re.compile(rf"{stem}-{re.escape(version)}-.*\.whl", re.I)
    dest.mkdir(parents=True, exist_ok=True)
    found = [p for p in dest.glob("*.whl") if pattern.fullmatch(p.name)]
    if not found:
        log(f"fetching {spec} with pip")
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
            pip += ["--only-binary=:all:", "--python-version", "3.14", "--implementation", "py"]
            run(pip + ["--abi", "none", "--platform", "any", "--dest", tmp, spec])
            for p in Path(tmp).glob("*.whl"):
                os.replace(p, dest / p.name)
        found = [p for p in dest.glob("*.whl") if pattern.fullmatch(p.name)]
    if not found:
        raise SystemExit(f"error: pip gave no py3-none-any wheel for {spec}; check the registry")
    return found[0]


def pinned(spec):
    """name==version: as given, or the version installed here (the site's labextension)."""
    if "==" in spec:
        return spec
    try:
        return f"{spec}=={metadata.version(spec)}"
    except metadata.PackageNotFoundError:
        raise SystemExit(f"error: {spec} is not installed; run: pip install -e '.[site]'") from None


def kernel_extension_wheels():
    """The kernel's own wheels (piplite, pyodide_kernel, the ipykernel shim), as
    jupyterlite-pyodide-kernel's labextension ships them."""
    from jupyter_core.paths import jupyter_path

    for folder in jupyter_path("labextensions"):
        pypi = Path(folder) / "@jupyterlite" / "pyodide-kernel-extension" / "static" / "pypi"
        found = {}
        for name in KERNEL_EXTENSION_WHEELS:
            wheels = sorted(pypi.glob(f"{name}-*-py3-none-any.whl"))
            if wheels:
                found[norm(name)] = wheels[-1]
        if len(found) == len(KERNEL_EXTENSION_WHEELS):
            return found
    raise SystemExit(
        "error: jupyterlite-pyodide-kernel's wheels not found; pip install -e '.[site]'"
    )


def wheel_version(path):
    return Path(path).name.split("-")[1]


def compile_wheels(core, wheels, cache):
    """{name: wheel} compiled to bytecode by this Pyodide (cached by the inputs' hashes)."""
    key = hashlib.sha256(TOOLS.read_bytes() + (core / "pyodide.asm.wasm").read_bytes()[:4096])
    key.update(json.dumps(sorted((n, sha256_file(w)) for n, w in wheels.items())).encode())
    out = cache / "compiled" / key.hexdigest()[:16]
    if not out.is_dir():
        log(f"compiling {len(wheels)} wheels to Python 3.14 bytecode (Pyodide in node)")
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            src, dst = Path(tmp) / "in", Path(tmp) / "out"
            src.mkdir()
            for wheel in wheels.values():
                shutil.copy2(wheel, src / wheel.name)
            run([node(), str(TOOLS), "compile", f"{core}/", str(src), str(dst)])
            out.parent.mkdir(parents=True, exist_ok=True)
            os.replace(dst, out)
    return {name: out / wheel.name for name, wheel in wheels.items()}


def closure(packages, names):
    """`names` and every package they depend on, in the lock `packages`."""
    seen, todo = [], [norm(n) for n in names]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.append(name)
            todo += [norm(d) for d in packages[name]["depends"]]
    return sorted(seen)


def cached_run(cache, kind, name, inputs, make):
    """cache/kind/<hash of inputs>-name, made by make(path) when missing; its path."""
    key = hashlib.sha256(TOOLS.read_bytes())
    for item in inputs:
        key.update(item if isinstance(item, bytes) else json.dumps(item).encode())
    path = cache / kind / f"{key.hexdigest()[:16]}-{name}"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        make(path)
    return path


def make_kernel_files(dest, cache):
    """KERNEL_FILES in dest: the kernel's packages but KERNEL_LATER, installed by Pyodide
    (cached by Pyodide, lock and the list); the archive's packages in KERNEL_FILES.json."""
    lock = json.loads((dest / "pyodide-lock.json").read_text())["packages"]
    names = [n for n in KERNEL_PACKAGES if n not in KERNEL_LATER]
    wheels = sorted(lock[n]["file_name"] for n in closure(lock, names))
    inputs = [(dest / "pyodide.asm.wasm").read_bytes()[:4096], names]
    inputs += [(dest / w).read_bytes() for w in wheels]

    def make(path):
        log(f"installing the kernel's {len(wheels)} packages into one archive (Pyodide in node)")
        run([node(), str(TOOLS), "sitepackages", f"{dest}/", str(path), ",".join(names)])

    archive = cached_run(cache, "kernel-files", KERNEL_FILES, inputs, make)
    shutil.copy2(archive, dest / KERNEL_FILES)
    listing = json.loads(Path(f"{archive}.json").read_text())
    listing["later"] = KERNEL_LATER
    (dest / f"{KERNEL_FILES}.json").write_text(json.dumps(listing))
    return archive.stat().st_size


def make_snapshots(dest, cache):
    """The snapshots of SNAPSHOTS in dest (cached by Pyodide, their files, code and tool)."""
    made = {}
    for name, (archive, code) in SNAPSHOTS.items():
        files = dest / archive if archive else None
        inputs = [(dest / "pyodide.asm.wasm").read_bytes()[:4096], code, TOOLS.read_bytes()]
        inputs += [files.read_bytes()] if files else []

        def make(path, files=files, code=code, name=name):
            log(f"making {name} (Pyodide in node)")
            run([node(), str(TOOLS), "snapshot", f"{dest}/", str(path), str(files or ""), code])

        snapshot = cached_run(cache, "snapshots", name, inputs, make)
        shutil.copy2(snapshot, dest / name)
        made[name] = snapshot.stat().st_size
    return made


def stage(version, dest, cache, cdn_base):
    """Pyodide core + compiled wheels + snapshots in dest, with a lock that boots offline."""
    dest.mkdir(parents=True)
    with tarfile.open(fetch_pyodide(version, cache)) as tar:
        for name in CORE + ["pyodide-lock.json"]:
            member = tar.extractfile(f"package/{name}")
            (dest / name).write_bytes(member.read())
    lock = json.loads((dest / "pyodide-lock.json").read_text())
    packages = lock["packages"]
    wheels = {}
    for name in closure(packages, BOOT_PACKAGES):
        entry = packages[name]
        wheels[name] = fetch_wheel(f"{entry['name']}=={entry['version']}", cache / "wheels", cache)
    wheels.update(kernel_extension_wheels())
    for spec in PYPI_ADDED:
        wheels[norm(spec.split("==")[0])] = fetch_wheel(pinned(spec), cache / "wheels", cache)
    for name, (depends, imports) in ADDED.items():
        packages[name] = {
            "name": name, "version": wheel_version(wheels[name]), "file_name": "", "sha256": "",
            "install_dir": "site", "package_type": "package", "imports": imports,
            "depends": depends, "unvendored_tests": False,
        }  # fmt: skip
    for name, wheel in compile_wheels(dest, wheels, cache).items():
        shutil.copy2(wheel, dest / wheel.name)
        packages[name]["file_name"] = wheel.name
        packages[name]["sha256"] = sha256_file(wheel)
    for name, entry in packages.items():
        if name not in wheels:
            entry["file_name"] = cdn_base + entry["file_name"]
    (dest / "pyodide-lock.json").write_text(json.dumps(lock, indent=1))
    for name, source in SERVED.items():
        shutil.copy2(source, dest / name)
    files = make_kernel_files(dest, cache)
    snapshots = make_snapshots(dest, cache)
    return {
        "version": version,
        "local": sorted(wheels),
        "cdn": len(packages) - len(wheels),
        "kernel_files": files,
        "snapshots": snapshots,
    }
