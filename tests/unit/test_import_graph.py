"""No import circles among ganfriends' modules.

The graph is read from the source with ``ast``, not by importing: an edge ``a -> b`` is an
``import b`` / ``from b import x`` anywhere in ``a`` (``from pkg import sub`` is an edge to the
submodule ``pkg.sub`` when ``sub`` is one). Imports under ``if TYPE_CHECKING:`` do not count: they
never run. Imports inside functions do: moving one there hides a circle from the interpreter,
not from the reader (the three circles issue 21 named were all hidden that way). A package's
``__init__`` is a node like any other module, so a circle through one (``pkg/__init__`` ->
``pkg.a`` -> ``pkg``) is found too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import ganfriends

ROOT = Path(ganfriends.__file__).parent
PACKAGE = "ganfriends"


def module_name(path: Path) -> str:
    """``ganfriends/db/__init__.py`` -> ``ganfriends.db``; ``ganfriends/db/x.py`` -> ``…db.x``."""
    parts = [PACKAGE, *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_type_checking(test: ast.expr) -> bool:
    """``if TYPE_CHECKING:`` or ``if typing.TYPE_CHECKING:``."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_imports(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements under ``node`` that can run: all but those in ``if TYPE_CHECKING:``.

    Imports inside functions count: a function-level import that closes a circle only hides it
    (the two modules still need each other, and the first call pays for the late import).
    """
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child
        elif isinstance(child, ast.If) and is_type_checking(child.test):
            for branch in child.orelse:
                yield from runtime_imports(ast.Module(body=[branch], type_ignores=[]))
        else:
            yield from runtime_imports(child)


def resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a ``from`` import names (relative imports resolved)."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def import_graph() -> dict[str, set[str]]:
    """Module -> the ganfriends modules it imports at load time."""
    paths = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}
    graph: dict[str, set[str]] = {name: set() for name in paths}
    for name, path in paths.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        for node in runtime_imports(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                source = resolve(name, is_package, node)
                # "from pkg import sub" imports the submodule when there is one.
                targets = [
                    f"{source}.{alias.name}" if f"{source}.{alias.name}" in paths else source
                    for alias in node.names
                ]
            graph[name].update(t for t in targets if t in paths and t != name)
    return graph


def strongly_connected_components(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iteratively (the graph is small, but recursion depth is not ours)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            target = next(edges, None)
            if target is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component: list[str] = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
            elif target not in index:
                index[target] = low[target] = len(index)
                stack.append(target)
                on_stack.add(target)
                work.append((target, iter(sorted(graph[target]))))
            elif target in on_stack:
                low[node] = min(low[node], index[target])
    return components


def cycle_in(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """One concrete circle through the component's first module, for the failure message."""
    members = set(component)
    start = component[0]
    paths: dict[str, list[str]] = {start: [start]}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for target in sorted(graph[node] & members):
                if target == start:
                    return [*paths[node], start]
                if target not in paths:
                    paths[target] = [*paths[node], target]
                    following.append(target)
        frontier = following
    return component  # unreachable for a strongly connected component


def test_the_graph_sees_the_packages_modules() -> None:
    graph = import_graph()
    assert "ganfriends.cli" in graph
    assert "ganfriends.db.connection" in graph["ganfriends.db.migrations"]


def test_a_circle_is_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    components = [c for c in strongly_connected_components(graph) if len(c) > 1]
    assert components == [["a", "b", "c"]]
    assert cycle_in(components[0], graph) == ["a", "b", "c", "a"]


def test_type_checking_imports_do_not_count_and_function_imports_do() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import ganfriends.cli\n"
        "def f() -> None:\n    import ganfriends.step\n"
        "try:\n    import ganfriends.rng\nexcept ImportError:\n    pass\n"
    )
    names = [alias.name for node in runtime_imports(tree) for alias in node.names]
    assert names == ["TYPE_CHECKING", "ganfriends.step", "ganfriends.rng"]


def test_no_module_import_circles() -> None:
    graph = import_graph()
    circles = [c for c in strongly_connected_components(graph) if len(c) > 1]
    assert not circles, "import circles:\n" + "\n".join(
        " -> ".join(cycle_in(c, graph)) + f"  ({len(c)} modules)" for c in circles
    )
