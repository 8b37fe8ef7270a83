"""The package's shape: no import circle, stages that are stages, one type-hint convention."""

import ast
import sys
from pathlib import Path

from microgpt import stages

ROOT = Path(__file__).resolve().parent.parent
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


# The one deferred import of the package's own code, and why it is worth the exception.
DEFERRED = {
    ("data.py", "download"): "urllib costs a tenth of a default run; only a download needs it"
}


def test_no_import_inside_a_function_but_optional_ones():
    optional = {"pygments", "IPython", "resource", "matplotlib", "numpy", "torch"}
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


def test_layers_import_downwards_only():
    """The core imports no stage, tool or book helper; stages import no tool or book helper."""
    above = {"core": ("microgpt.stages", "microgpt.tools", "microgpt.book")}
    above["microgpt.stages"] = ("microgpt.tools", "microgpt.book")
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        layer = next((p for p in ("microgpt.stages",) if name.startswith(p)), None)
        if name.startswith(("microgpt.tools", "microgpt.book")) or name == "microgpt.__main__":
            continue  # `python -m microgpt` is the command line's door
        forbidden = above[layer or "core"]
        bad = [dep for dep in imports_of(path) if dep.startswith(forbidden)]
        assert not bad, f"{name} imports {bad}"
