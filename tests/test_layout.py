"""The package's shape: no import circle, layers that import downwards only, stages
that are stages, no measured figure in a docstring, one type-hint convention."""

import ast
import io
import re
import subprocess
import sys
import tokenize

from helpers import MEASURED, ROOT

from microgpt import stages

PACKAGE = ROOT / "microgpt"


def module_name(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path):
    """The `microgpt` modules that `path` imports at module level (top-level statements)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("microgpt")}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("microgpt"):
                found.add(target)
                found |= {f"{target}.{alias.name}" for alias in node.names}
    return found


def test_no_import_circle_in_the_package():
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: imports_of(path) & modules.keys() - {name} for name, path in modules.items()}
    for name in graph:  # a package's __init__ is imported by its modules: not a cycle
        graph[name] = {dep for dep in graph[name] if not name.startswith(dep + ".")}
    state = {}

    def visit(name, chain):
        if state.get(name) == "done":
            return
        assert state.get(name) != "open", "import circle: " + " -> ".join(chain + [name])
        state[name] = "open"
        for dep in sorted(graph[name]):
            visit(dep, chain + [name])
        state[name] = "done"

    for name in sorted(graph):
        visit(name, [])


def literal_import_module(node):
    """Whether `node` is `importlib.import_module("a.literal.name")`."""
    return (
        isinstance(node, ast.Call)
        and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    )


# The deferred imports of the package's own code, and why each is worth the exception.
DEFERRED = {
    ("data.py", "download"): "urllib is slow to import, and only a download needs it",
    ("cli.py", "bench"): "training imports nothing of the benchmark; only `bench` needs it",
    ("timing.py", "blas_threads"): "stages._arrays imports numpy, an optional extra",
}


def test_no_import_inside_a_function_but_optional_ones():
    optional = {"pygments", "IPython", "ipywidgets", "resource", "matplotlib", "numpy", "torch"}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.Import):
                        roots = {alias.name.split(".")[0] for alias in inner.names}
                    elif isinstance(inner, ast.ImportFrom):
                        if inner.level and all(
                            (path.name, a.name) in DEFERRED for a in inner.names
                        ):
                            continue
                        roots = {(inner.module or ".").split(".")[0] if not inner.level else "."}
                    elif literal_import_module(inner):  # the same import, spelled as a call
                        roots = {inner.args[0].value.split(".")[0]}
                    else:
                        continue
                    assert roots <= optional, f"{path.name}:{inner.lineno} imports {roots}"


def test_stages_folder_holds_registered_stages_and_private_helpers_only():
    registered = {stage.module_name.rpartition(".")[2] for stage in stages.STAGES}
    for path in (PACKAGE / "stages").glob("*.py"):
        name = path.stem
        assert name == "__init__" or name.startswith("_") or name in registered, name


def test_no_stage_module_shadows_a_well_known_module():
    well_known = set(sys.stdlib_module_names) | {"numpy", "torch", "numba", "matplotlib"}
    for stage in stages.STAGES:
        assert stage.module_name.rpartition(".")[2] not in well_known, stage.name


def test_one_type_hint_convention_none():
    """micrograd's convention, everywhere: no annotations on functions (dataclass fields aside)."""
    for folder in ("microgpt", "lite", "book", "tests", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            if "_" == path.relative_to(ROOT).parts[1][:1]:  # lite/_cache, lite/_output
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    args = node.args.args + node.args.kwonlyargs + node.args.posonlyargs
                    hinted = [a.arg for a in args if a.annotation] + ["return"] * bool(node.returns)
                    assert not hinted, f"{path.relative_to(ROOT)}:{node.lineno} annotates {hinted}"


# The layers, and which layers each may import. The arrows point one way only:
#   core <- stages <- measuring <- commands
#                          ^
#                          +----- book
# The core is the model (microgpt/*.py); the stages are the same model after each pass;
# the measuring modules of tools/ time and report stages and are imported by the book;
# the command-line modules of tools/ are imported by nothing but each other, so the
# book's helpers never load argparse's world, and `python -m microgpt` is their door.
LAYERS = {
    "core": {"core"},
    "stages": {"core", "stages"},
    "measuring": {"core", "stages", "measuring"},
    "commands": {"core", "stages", "measuring", "commands"},
    "book": {"core", "stages", "measuring", "book"},
}
MEASURING = {"microgpt.tools.timing", "microgpt.tools.report"}
COMMANDS = {"microgpt.__main__", "microgpt.tools", "microgpt.tools.cli", "microgpt.tools.args"}
COMMANDS |= {"microgpt.tools.bench", "microgpt.tools.profiling", "microgpt.tools.distributed"}
COMMANDS |= {"microgpt.tools.parallel_run"}


def layer_of(name):
    if name.startswith("microgpt.stages"):
        return "stages"
    if name.startswith("microgpt.book"):
        return "book"
    if name in MEASURING:
        return "measuring"
    if name in COMMANDS:
        return "commands"
    assert not name.startswith("microgpt.tools"), f"{name}: say in LAYERS which layer it is"
    return "core"


def test_layers_import_downwards_only():
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    for name, path in modules.items():
        allowed = LAYERS[layer_of(name)]
        for dep in imports_of(path) & modules.keys():
            assert layer_of(dep) in allowed, f"{name} ({layer_of(name)}) imports {dep}"


def test_a_stage_imports_only_stages_before_it():
    """Stages are cumulative: each builds on stages earlier in the registry; code two
    stages share is a private helper (`_name.py`), which imports no stage."""
    order = {stage.module_name: i for i, stage in enumerate(stages.STAGES)}
    for path in (PACKAGE / "stages").glob("*.py"):
        name = module_name(path)
        if path.name == "__init__.py":
            continue
        for dep in imports_of(path) & order.keys():
            assert name in order, f"the helper {name} imports the stage {dep}"
            assert order[dep] < order[name], f"{name} imports {dep}, a later stage"


def test_training_imports_nothing_of_the_benchmark(tmp_path):
    """`python -m microgpt` trains without loading the benchmark's modules (each import
    is one line of `-X importtime`)."""
    (tmp_path / "names.txt").write_text("emma\nolivia\nava\n")
    args = ["--steps", "1", "--samples", "0", "--stage", "flat", "--data", "names.txt"]
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "microgpt", *args],
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    loaded = {line.split("|")[-1].strip() for line in done.stderr.splitlines()}
    assert "microgpt.tools.cli" in loaded and "microgpt.train" in loaded  # the parse works
    benchmark = MEASURING | {"microgpt.tools.bench"}
    assert not loaded & benchmark, sorted(loaded & benchmark)


# Figures in docstrings and comments that a test keeps true, and which test.
KEPT_TRUE = {("engine.py", "100,000 nodes"): "tests/test_engine.py walks such a chain"}
MEASURED_OR_COUNTED = re.compile(MEASURED.pattern.replace("|nodes", "|nodes|params|parameters"))


def comments_and_docstrings(source):
    """The docstrings and comments of a module's source, with their code spans left out."""
    texts = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            texts.append(ast.get_docstring(node, clean=False) or "")
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            texts.append(token.string)
    return [re.sub(r"`[^`]*`", " ", text) for text in texts]


def test_no_measured_figure_in_a_docstring_or_comment():
    """A time, a speed-up, a share, a size or a count measured once goes stale in a
    docstring: the benchmark's record and the chapters' outputs hold those."""
    for path in PACKAGE.rglob("*.py"):
        for text in comments_and_docstrings(path.read_text()):
            for figure in MEASURED_OR_COUNTED.findall(text):
                assert (path.name, figure) in KEPT_TRUE, f"{path.relative_to(ROOT)}: {figure!r}"
    assert MEASURED_OR_COUNTED.findall("43,091 nodes, 4192 params, 1.6x, 12 ms") == [
        "43,091 nodes",
        "4192 params",
        "1.6x",
        "12 ms",
    ]
