"""The import graph of linops, priors and solvers, read from the source with `ast`: no cycle, and the layering.

An edge M -> D means that running module M imports module D: any `import` or `from ... import` statement in M,
at module level or inside a function (a function-local import is a cycle deferred to call time, not a cycle
removed). Importing a.b.c also runs the packages a and a.b, so they are edges too, except M's own packages,
which are already being initialised when M runs. `from pkg import name` is an edge to the submodule pkg.name
when there is one, else to pkg.

Layering (README, DESIGN.md):
  linops <- priors <- solvers    linops imports neither priors nor solvers; priors does not import solvers
  core linops                    imports nothing from the backends and adapters at its edge (linops.cuda,
                                 linops.cpu, linops.interop), directly or through another module, except the
                                 numpy/CuPy array round trip linops.interop.arrays that `apply` uses
  deepinv, pylops, cupy          imported at module level only by the adapters (*/interop/, linops/cuda/)
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

from linops.base import Operations, operations

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("linops", "priors", "solvers")
#: the edge of linops: backends and adapters, and the package itself (its __init__ imports them to register them)
EDGE = ("linops.cuda", "linops.cpu", "linops.interop", "linops.testing")
#: what the core may use from the edge: the array round trip of `LinearOperator.apply` (and its package)
CORE_MAY_USE = {"linops.interop", "linops.interop.arrays"}
ADAPTER_ONLY = ("deepinv", "pylops", "cupy")


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@functools.cache
def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _imported_names(module: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> list[str]:
    """Dotted names an import statement may load: `import a.b` gives a.b; `from p import x` gives p and p.x."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    return [prefix] + [f"{prefix}.{alias.name}" for alias in node.names]


@functools.cache
def _graph() -> tuple[dict[str, set[str]], dict[tuple[str, str], set[str]], dict[str, list[tuple[str, str]]]]:
    """(edges M -> {D}, where each edge comes from as 'path:line', external module-level imports per module)."""
    modules = _modules()
    edges: dict[str, set[str]] = {m: set() for m in modules}
    where: dict[tuple[str, str], set[str]] = {}
    external: dict[str, list[tuple[str, str]]] = {m: [] for m in modules}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        top_level = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            at = f"{path.relative_to(ROOT)}:{node.lineno}"
            for name in _imported_names(module, path.name == "__init__.py", node):
                if id(node) in top_level and name.split(".")[0] in ADAPTER_ONLY:
                    external[module].append((name, at))
                while name and name not in modules:  # `from p import function` is an edge to p
                    name = name.rpartition(".")[0]
                if not name:
                    continue
                parts = name.split(".")
                for target in (".".join(parts[:i]) for i in range(1, len(parts) + 1)):
                    if target in modules and target != module and not module.startswith(target + "."):
                        edges[module].add(target)
                        where.setdefault((module, target), set()).add(at)
    return edges, where, external


def _find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle [m0, m1, ..., m0] of the graph, or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(edges):
        if start in state:
            continue
        path, stack = [start], [iter(sorted(edges[start]))]
        state[start] = 1
        while stack:
            child = next(stack[-1], None)
            if child is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(child) == 1:
                return path[path.index(child) :] + [child]
            elif child not in state:
                state[child] = 1
                path.append(child)
                stack.append(iter(sorted(edges[child])))
    return None


def _at(where: set[str]) -> str:
    lines = sorted(where)
    return ", ".join(lines[:3]) + (f" and {len(lines) - 3} more" if len(lines) > 3 else "")


def _describe(cycle: list[str]) -> str:
    _, where, _ = _graph()
    return "\n".join(f"  {a} -> {b}   ({_at(where[a, b])})" for a, b in zip(cycle, cycle[1:]))


def _reachable(edges: dict[str, set[str]], start: str) -> dict[str, str]:
    """Every module that running `start` imports, directly or not, with the module that imports it."""
    parent, todo = {}, [start]
    while todo:
        module = todo.pop()
        for target in edges[module]:
            if target not in parent and target != start:
                parent[target] = module
                todo.append(target)
    return parent


def test_the_graph_sees_the_packages_and_their_function_local_imports():
    edges, where, _ = _graph()
    assert {"linops.base", "linops.algebra", "priors.protocol", "solvers.ddrm"} <= set(edges)
    assert "linops.base" in edges["linops.algebra"]  # a module-level relative import
    assert "linops.operators.blur" in edges["linops.operators"]  # a package's __init__ imports its modules
    assert "linops.operators" not in edges["linops.operators.blur"]  # but a module does not import its package
    # a function-local import (solvers/app/cli.py imports the slice pipeline when the command runs) is an edge
    assert "solvers.app.reconstruct" in edges["solvers.app.cli"]
    # an absolute import of a submodule also runs its packages
    assert {"priors", "priors.zoo", "priors.zoo.bundle"} <= edges["solvers.app.choices"]


def test_no_import_cycle_counting_function_local_imports():
    edges, _, _ = _graph()
    cycle = _find_cycle(edges)
    assert cycle is None, f"import cycle of {len(cycle) - 1} modules:\n{_describe(cycle)}"


def test_the_cycle_search_finds_a_cycle_and_names_it():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_layering_linops_imports_neither_priors_nor_solvers_and_priors_not_solvers():
    edges, where, _ = _graph()
    bad = [
        f"{m} -> {d} ({_at(where[m, d])})"
        for m, targets in edges.items()
        for d in targets
        if (_within(m, "linops") and (_within(d, "priors") or _within(d, "solvers")))
        or (_within(m, "priors") and _within(d, "solvers"))
    ]
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_core_linops_imports_no_backend_or_adapter_even_indirectly():
    edges, where, _ = _graph()

    def at_edge(module):
        return any(_within(module, e) for e in EDGE) and module not in CORE_MAY_USE

    core = [m for m in edges if _within(m, "linops") and m != "linops" and not any(_within(m, e) for e in EDGE)]
    assert {"linops.base", "linops.operators.blur", "linops.operators.tomography.projector"} <= set(core)
    crossings = {}  # (importer, edge module) -> one chain from a core module
    for module in core:
        parent = _reachable(edges, module)
        for target in sorted(parent):
            if at_edge(target) and not at_edge(parent[target]) and (parent[target], target) not in crossings:
                chain = [target]
                while chain[-1] != module:
                    chain.append(parent[chain[-1]])
                crossings[parent[target], target] = " -> ".join(reversed(chain))
    assert not crossings, "core linops modules that import the edge:\n" + "\n".join(
        f"  {a} -> {b} ({_at(where[a, b])}), reached by {chain}" for (a, b), chain in sorted(crossings.items())
    )


def test_deepinv_pylops_and_cupy_are_imported_at_module_level_only_by_adapters():
    _, _, external = _graph()
    adapters = ("linops.interop", "priors.interop", "solvers.interop", "linops.cuda")
    bad = [
        f"{m} imports {name} ({at})"
        for m, imports in external.items()
        if not any(_within(m, a) for a in adapters)
        for name, at in imports
    ]
    assert not bad, "\n".join(bad)
    assert any(name == "deepinv" for name, _ in external["priors.interop.deepinv"])  # the check sees them


# ----------------------------------------------------------------------------------------------
# the late-bound operations of linops.base (how base calls the algebra without importing it)


def test_every_operation_of_the_base_is_registered_once_linops_is_imported():
    assert operations.missing() == ()
    import linops
    from linops import algebra, spectral

    assert operations.compose is algebra.compose and operations.Adjoint is algebra.Adjoint
    assert operations.simplify is linops.simplify and operations.svd is spectral.svd


def test_an_unregistered_operation_names_the_module_that_registers_it():
    fresh = Operations()
    assert set(fresh.missing()) == set(Operations.names()) >= {"compose", "Adjoint", "simplify", "svd"}
    with pytest.raises(RuntimeError, match=r"`compose`.*linops\.algebra"):
        fresh.compose(None, None)
    with pytest.raises(RuntimeError, match=r"`norm`.*linops\.spectral"):
        fresh.norm(None)
    fresh.register(compose=max)
    assert fresh.compose is max and "compose" not in fresh.missing()
    with pytest.raises(TypeError, match="no operation named 'kron'"):
        fresh.register(kron=max)
    with pytest.raises(TypeError, match="svd must be callable"):
        fresh.register(svd=3)
