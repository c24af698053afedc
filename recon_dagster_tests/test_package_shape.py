"""The package's boundaries, checked on its import graph: no cycle, no module reaching into
another's underscore names, domains that never import each other, Dagster only under `defs/`
(and in the modules that assemble or drive it), at most one private Dagster import, and the
environment read only by `settings/`."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "recon_dagster"
# Modules that assemble or drive Dagster objects, outside `defs/` by design.
DAGSTER_USERS = {"recon_dagster.definitions", "recon_dagster.demo"}


def modules() -> dict[str, ast.Module]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = ast.parse(path.read_text())
    return found


def imports(tree: ast.Module) -> list[tuple[str, str | None]]:
    """(module, name imported from it or None) for every import statement of `tree`."""
    out: list[tuple[str, str | None]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            out += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            out += [(alias.name, None) for alias in node.names]
    return out


def graph() -> dict[str, set[str]]:
    known = modules()
    edges: dict[str, set[str]] = defaultdict(set)
    for name, tree in known.items():
        for module, imported in imports(tree):
            if not module.startswith("recon_dagster"):
                continue
            target = f"{module}.{imported}" if f"{module}.{imported}" in known else module
            edges[name].add(target)
    return edges


def test_no_import_cycle():
    edges = graph()
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            raise AssertionError("import cycle: " + " -> ".join([*path[path.index(node) :], node]))
        if node in done:
            return
        for nxt in sorted(edges.get(node, ())):
            visit(nxt, [*path, node])
        done.add(node)

    for module in sorted(modules()):
        visit(module, [])


def test_no_module_imports_another_modules_underscore_names():
    offenders = [
        f"{name} imports {imported} from {module}"
        for name, tree in modules().items()
        for module, imported in imports(tree)
        if module.startswith("recon_dagster") and imported and imported.startswith("_")
    ]
    assert offenders == []


def test_the_domains_never_import_each_other():
    domains = ("charges", "payouts")
    offenders = [
        f"{name} -> {target}"
        for name, targets in graph().items()
        for target in targets
        for mine in domains
        for other in domains
        if mine != other
        and name.startswith(f"recon_dagster.defs.{mine}")
        and target.startswith(f"recon_dagster.defs.{other}")
    ]
    assert offenders == []


def test_dagster_is_imported_only_where_dagster_objects_are_built():
    offenders = [
        name
        for name, tree in modules().items()
        if any(module.split(".")[0].startswith("dagster") for module, _ in imports(tree))
        and not name.startswith(("recon_dagster.defs", "recon_dagster.testing"))
        and name not in DAGSTER_USERS
    ]
    assert offenders == []


def test_at_most_one_module_imports_dagster_privately():
    private = {
        name
        for name, tree in modules().items()
        for module, _ in imports(tree)
        if module.startswith("dagster._")
    }
    assert private <= {"recon_dagster.defs.check_results"}


def reads_the_environment(tree: ast.Module) -> bool:
    """`os.environ` or `os.getenv` anywhere in the module (reading or writing it)."""
    return any(
        isinstance(node, ast.Attribute)
        and node.attr in ("environ", "getenv")
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
        for node in ast.walk(tree)
    )


def test_only_the_settings_read_the_environment():
    # `testing/` starts servers and deployments with their own environments; the demo sets
    # DAGSTER_HOME (Dagster's variable, not ours) for the instance it creates.
    offenders = [
        name
        for name, tree in modules().items()
        if reads_the_environment(tree)
        and not name.startswith(("recon_dagster.settings", "recon_dagster.testing"))
        and name != "recon_dagster.demo"
    ]
    assert offenders == []
