"""The package's layers, read from its imports (those inside functions too) with ast.

es_mpi/ is folders by what they do in a run (docs/architecture.md): core <- job <- parts <- records
<- run <- commands. A module imports only from its own layer or the ones below, there is no
import cycle, the parser knows no runtime, strategies and policies know no MPI, and only the node
runtime makes MPI windows and communicators (so it can free them all).
"""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "es_mpi"
LAYERS = ("core", "job", "parts", "records", "run", "commands")
RUNTIME_LIBRARIES = ("gymnasium", "mpi4py", "ale_py", "mujoco")
NODE_RUNTIME = "es_mpi.run.node_runtime"  # the one module (or, were it a package, folder) that makes them
# mpi4py methods that make a window or a communicator, which someone must free
MPI_ALLOCATIONS = {"Allocate", "Allocate_shared", "Create", "Create_dynamic", "Split", "Split_type", "Dup", "Idup",
                   "Dup_with_info", "Create_group", "Create_from_group", "Create_intercomm", "Merge", "Create_cart",
                   "Create_graph", "Create_dist_graph", "Create_dist_graph_adjacent", "Spawn", "Spawn_multiple",
                   "Accept", "Connect", "Join"}


def module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules():
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name, path, known):
    """Every module `name` imports (absolute names; `from pkg import submodule` names the submodule)."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in known)
    return found


def import_graph():
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def find_cycle(graph):
    """One import cycle as a list of modules, or None (depth-first search over modules of the graph)."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in graph:
                continue
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def layer(module):
    """Index in LAYERS; the package root (es_mpi, es_mpi.__main__) sits above every layer."""
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else len(LAYERS)


def mpi_allocations(source, filename="<source>"):
    """Lines of `source` that call a method named like one that makes an MPI window or communicator."""
    return sorted(node.lineno for node in ast.walk(ast.parse(source, filename))
                  if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr in MPI_ALLOCATIONS)


def own(targets):
    return {t for t in targets if t == "es_mpi" or t.startswith("es_mpi.")}


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "os"}, "b": set()}) is None


def test_every_module_lives_in_a_layer():
    stray = [name for name in modules() if layer(name) == len(LAYERS) and name not in ("es_mpi", "es_mpi.__main__")]
    assert stray == []


def test_no_import_cycle():
    assert find_cycle(import_graph()) is None


def test_imports_point_down_the_layers():
    upward = [(name, target) for name, targets in import_graph().items() for target in own(targets)
              if target != "es_mpi" and layer(target) > layer(name)]
    assert upward == []


@pytest.mark.parametrize("name", [name for name in modules() if name.startswith("es_mpi.job")])
def test_the_parser_knows_no_runtime(name):
    targets = import_graph()[name]
    runtime = sorted(t for t in targets if t.split(".")[0] in RUNTIME_LIBRARIES)
    assert runtime == []
    outside = sorted(t for t in own(targets) if layer(t) > LAYERS.index("job"))
    assert outside == []  # no env modules, policy or strategy builders


@pytest.mark.parametrize("name", [name for name in modules()
                                  if name.startswith(("es_mpi.parts.strategies", "es_mpi.parts.policies"))])
def test_strategies_and_policies_know_no_mpi(name):
    targets = import_graph()[name]
    assert sorted(t for t in targets if t.split(".")[0] == "mpi4py" or t.startswith("es_mpi.run")) == []


def test_the_allocation_finder_finds_windows_and_communicators():
    source = ("from mpi4py import MPI\n"
              "window = MPI.Win.Allocate_shared(8, 8, comm=node)\n"
              "node = world.Split_type(MPI.COMM_TYPE_SHARED)\n"
              "copy = node.Dup()\n"
              "node.Barrier()\n")
    assert mpi_allocations(source) == [2, 3, 4]


def test_only_the_node_runtime_makes_mpi_windows_and_communicators():
    """Whatever makes one must free it, on every path: the runtime does (run/node_runtime.py: Handles)."""
    found = {name: mpi_allocations(path.read_text(), str(path)) for name, path in modules().items()
             if name != NODE_RUNTIME and not name.startswith(NODE_RUNTIME + ".")}
    assert {name: lines for name, lines in found.items() if lines} == {}
    assert mpi_allocations((PACKAGE / "run" / "node_runtime.py").read_text())  # the rule guards something
