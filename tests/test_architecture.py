"""The package's shape, read from its source with `ast` (nothing imported): no import cycle, no import from a
higher layer, no import of the package's public face (its `__init__`) from inside the package, short
command-line and service files, no long module, and a package root that holds only the small shared modules.
Each rule is a function of plain data, and each is shown to catch a planted violation."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "unifashion"
ROOT = "<root>"  # the area of the package root's own modules
# the package's __init__: the public API (`from unifashion import UniFashion`), which lazily re-exports names
# from every layer, so it sits in the top layer, and nothing inside the package imports from it
FACE = "<face>"
# the package root's modules: small and shared by every layer (__main__ is `python -m unifashion`)
ROOT_MODULES = frozenset({"__init__", "__main__", "errors", "config", "processes", "storage", "version"})
ROOT_DATA = frozenset({"configs"})  # folders of shipped files beside the packages (the model configs' YAML)
# lowest first; a module may import from its own layer (see SIDEWAYS) and from the layers below
LAYERS = (frozenset({ROOT}), frozenset({"data"}), frozenset({"models"}),
          frozenset({"losses", "training", "evaluation"}), frozenset({"search"}),
          frozenset({"service", "recipes", "cli", "__main__", FACE}))
# the imports allowed between two areas of one layer (anything else sideways is refused)
SIDEWAYS = frozenset({("training", "losses"), ("cli", "recipes"), ("cli", "service"), ("__main__", "cli")})
SHORT_AREAS = ("cli", "service")
SHORT_LINES = 300  # most lines of any file under cli/ or service/ (the service's page and script too)
LONG_LINES = 800  # most lines of any source file


def module_name(rel: Path) -> str:
    """unifashion/data/sources.py -> unifashion.data.sources; a package's __init__.py is the package."""
    parts = rel.with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def read_modules(src: Path = SRC) -> dict[str, tuple[Path, str]]:
    """{module name: (path, source)} of every module of the package."""
    return {module_name(p.relative_to(src)): (p, p.read_text(encoding="utf-8"))
            for p in sorted((src / PACKAGE).rglob("*.py"))}


def imports_of(module: str, source: str, is_package: bool, modules: set[str]) -> set[str]:
    """The package's modules that `source` imports, wherever the import stands (in a function too: a
    deferred import still makes a dependency). `from a import b` is the module a.b when there is one,
    else a; a relative import is resolved against `module`."""
    base = module.split(".") if is_package else module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            origin = ".".join(base[:len(base) - node.level + 1] + ([node.module] if node.module else [])) \
                if node.level else node.module
            names = [f"{origin}.{a.name}" if f"{origin}.{a.name}" in modules else origin for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules and "." in name:  # `import a.b.c` of a name inside a module
                name = name.rsplit(".", 1)[0]
            if name in modules and name != module:
                found.add(name)
    return found


def import_graph(sources: dict[str, tuple[bool, str]]) -> dict[str, set[str]]:
    """{module: the modules it imports} from {module: (is a package, source)}."""
    modules = set(sources)
    return {m: imports_of(m, text, is_package, modules) for m, (is_package, text) in sources.items()}


def area(module: str) -> str:
    """unifashion.data.formats.catalog -> data; unifashion.errors -> <root>; unifashion.__main__ -> __main__;
    unifashion (the package's __init__) -> <face>."""
    parts = module.split(".")
    if len(parts) == 1:
        return FACE
    if len(parts) == 2 and parts[1] in ROOT_MODULES:
        return "__main__" if parts[1] == "__main__" else ROOT
    return parts[1]


def layer(name: str) -> int:
    for i, areas in enumerate(LAYERS):
        if name in areas:
            return i
    raise KeyError(f"area {name!r} is in no layer: add it to LAYERS")


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every group of modules that import each other round a loop (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """'importer -> imported (why)' for every import from a higher layer or an unlisted sideways one."""
    bad = []
    for importer, targets in sorted(graph.items()):
        a = area(importer)
        for target in sorted(targets):
            b = area(target)
            if a == b:
                continue
            if layer(b) > layer(a):
                bad.append(f"{importer} -> {target} ({b} is above {a})")
            elif layer(b) == layer(a) and (a, b) not in SIDEWAYS:
                bad.append(f"{importer} -> {target} ({a} and {b} are one layer; not in SIDEWAYS)")
    return bad


def face_imports(graph: dict[str, set[str]]) -> list[str]:
    """'importer -> unifashion' for every module that imports the package's face (`from unifashion import
    X` where X is no module, or `import unifashion`): inside the package a name comes from its own module."""
    return [f"{importer} -> {PACKAGE}" for importer, targets in sorted(graph.items()) if PACKAGE in targets]


def long_files(lines: dict[str, int]) -> list[str]:
    """'path: N lines (limit)' for each file over its limit, from {path relative to the package: lines}."""
    bad = []
    for rel, n in sorted(lines.items()):
        limit = SHORT_LINES if rel.split("/")[0] in SHORT_AREAS else LONG_LINES
        if n > limit:
            bad.append(f"{rel}: {n} lines (limit {limit})")
    return bad


def stray_root_entries(names: list[str]) -> list[str]:
    """What the package root holds beyond the small shared modules, the layers' packages and ROOT_DATA."""
    allowed = (set().union(*LAYERS) - {ROOT, FACE, "__main__"}) | ROOT_DATA | {f"{m}.py" for m in ROOT_MODULES}
    return sorted(n for n in names if n != "__pycache__" and n not in allowed)


# ---- the package as it is -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph():
    return import_graph({m: (p.name == "__init__.py", text) for m, (p, text) in read_modules().items()})


def test_no_import_cycle(graph):
    assert import_cycles(graph) == []


def test_no_import_from_a_higher_layer(graph):
    assert sorted({area(m) for m in graph}) == sorted(set().union(*LAYERS))  # every area sits in a layer
    assert upward_imports(graph) == []


def test_nothing_inside_the_package_imports_its_public_face(graph):
    assert graph[PACKAGE]  # the face re-exports from the layers (imports inside its __getattr__ count)
    assert face_imports(graph) == []


def test_cli_and_service_files_are_short_and_no_file_is_long():
    package = SRC / PACKAGE
    lines = {}
    for path in sorted(package.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            lines[path.relative_to(package).as_posix()] = len(path.read_bytes().splitlines())
    assert long_files(lines) == []


def test_the_package_root_holds_only_the_small_shared_modules():
    assert stray_root_entries([p.name for p in (SRC / PACKAGE).iterdir()]) == []


# ---- each rule catches a planted violation ------------------------------------------------------------


def _graph(files: dict[str, str]) -> dict[str, set[str]]:
    """The import graph of a synthetic package given as {path under the package without .py: source}."""
    sources = {module_name(Path(PACKAGE, f"{rel}.py")): (rel.endswith("__init__"), text)
               for rel, text in files.items()}
    return import_graph(sources)


def test_a_planted_cycle_is_found_with_its_members():
    graph = _graph({"data/__init__": "", "data/a": "from unifashion.data import b\n",
                    "data/b": "import unifashion.data.c\n", "data/c": "def f():\n    from unifashion.data.a import x\n",
                    "data/d": "from unifashion.data.a import x\n"})
    assert graph["unifashion.data.a"] == {"unifashion.data.b"}  # `from package import module` is the module
    assert import_cycles(graph) == [["unifashion.data.a", "unifashion.data.b", "unifashion.data.c"]]
    assert import_cycles(_graph({"data/__init__": "", "data/a": "from unifashion.data import b\n", "data/b": ""})) == []


def test_relative_imports_resolve_and_names_inside_modules_count_as_their_module():
    graph = _graph({"data/__init__": "from .formats import catalog\n", "data/formats/__init__": "",
                    "data/formats/catalog": "from ..sources import find\nfrom . import common\n",
                    "data/formats/common": "", "data/sources": "import unifashion.data.formats.common.thing\n"})
    assert graph["unifashion.data"] == {"unifashion.data.formats.catalog"}
    assert graph["unifashion.data.formats.catalog"] == {"unifashion.data.sources", "unifashion.data.formats.common"}
    assert graph["unifashion.data.sources"] == {"unifashion.data.formats.common"}


def test_a_planted_upward_import_is_refused():
    graph = _graph({"errors": "", "data/__init__": "", "data/sources": "from unifashion.errors import DataError\n",
                    "models/__init__": "", "models/net": "from unifashion.data.sources import x\n",
                    "search/__init__": "", "search/engine": "from unifashion.models.net import y\n",
                    "data/bad": "from unifashion.search.engine import CatalogSearch\n",
                    "training/__init__": "", "training/loop": "from unifashion.evaluation.metrics import m\n",
                    "evaluation/__init__": "", "evaluation/metrics": "",
                    "cli/__init__": "from unifashion.service import app\n", "service/__init__": "", "service/app": "",
                    "__main__": "from unifashion.cli import main\n"})
    assert upward_imports(graph) == [
        "unifashion.data.bad -> unifashion.search.engine (search is above data)",
        "unifashion.training.loop -> unifashion.evaluation.metrics (training and evaluation are one layer; "
        "not in SIDEWAYS)"]


def test_a_planted_import_of_the_public_face_is_refused():
    graph = _graph({"__init__": "from unifashion.errors import DataError\n"
                                "def __getattr__(name):\n    from unifashion.search.engine import CatalogSearch\n",
                    "errors": "", "version": "", "data/__init__": "", "data/world": "from unifashion import __version__\n",
                    "data/fine": "from unifashion import errors, version\n",
                    "search/__init__": "", "search/engine": "from unifashion.data.fine import x\n",
                    "cli/__init__": "", "cli/app": "def main():\n    import unifashion\n",
                    "__main__": "from unifashion.cli import app\n"})
    assert graph["unifashion"] == {"unifashion.errors", "unifashion.search.engine"}  # the face may import down
    assert graph["unifashion.data.fine"] == {"unifashion.errors", "unifashion.version"}  # modules, not the face
    assert face_imports(graph) == ["unifashion.cli.app -> unifashion", "unifashion.data.world -> unifashion"]
    assert upward_imports(graph) == [  # and, as the top layer, the face is above all but the top layer's areas
        "unifashion.cli.app -> unifashion (cli and <face> are one layer; not in SIDEWAYS)",
        "unifashion.data.world -> unifashion (<face> is above data)"]


def test_planted_long_files_and_a_stray_root_module_are_named():
    lines = {"cli/train.py": 301, "cli/data.py": 300, "service/app.py": 420, "search/engine.py": 799,
             "data/synthetic/render.py": 801, "errors.py": 10}
    assert long_files(lines) == ["cli/train.py: 301 lines (limit 300)", "data/synthetic/render.py: 801 lines (limit 800)",
                                 "service/app.py: 420 lines (limit 300)"]
    assert stray_root_entries(["__init__.py", "errors.py", "config.py", "storage.py", "version.py", "__main__.py",
                               "data", "cli", "helpers.py", "utils", "<face>", "__pycache__"]) == ["<face>", "helpers.py",
                                                                                                 "utils"]
