"""The layout's rules (ARCHITECTURE.md), read off the source with `ast`: who may import whom, where SQL may
live, no import cycles, no module past 400 lines. Every import counts, wherever it stands in a module."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("node", "federation", "web", "migrations")
MAX_LINES = 400

# Layer of a module: node.<sub> for node's packages, the top-level package otherwise.
LAYERS = ("platform", "stores", "services", "edge", "adapters", "api", "realtime")
# Which layers each layer may import (besides itself). node.app and node.cli compose everything.
ALLOWED = {
    "platform": set(),
    "stores": {"platform"},
    "services": {"platform", "stores", "adapters"},
    "edge": {"platform", "stores", "services"},
    "adapters": {"platform", "federation"},
    "api": {"platform", "edge", "services", "stores", "adapters", "realtime"},
    "realtime": {"platform", "edge", "services", "stores"},
    "federation": {"platform", "stores", "services", "realtime"},
    "web": {"platform", "edge", "services", "stores", "adapters", "realtime", "federation"},
    "migrations": set(),
}
# Services still parse request bodies and encode cursors with the edge's helpers; issue 16 moves that
# parsing to the edge (typed commands), after which this list must be empty.
LEGACY = {("services", "node.edge.validation"), ("services", "node.edge.cursors")}

# A string constant that is an SQL statement (keywords are written upper-case in this code base).
SQL = re.compile(
    r"^\s*(SELECT\s|INSERT\s+INTO\s|UPDATE\s+\w+\s+(AS\s+\w+\s+)?SET\s|DELETE\s+FROM\s|WITH\s+\w+\s+AS\s*\(|"
    r"CREATE\s+(TABLE|DATABASE|INDEX)|TRUNCATE\s|LOCK\s+TABLE)|\bpg_notify\(",
)


def _modules() -> dict[str, Path]:
    found = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str) -> set[str]:
    """The project modules `module` imports, at module level, in functions or under TYPE_CHECKING."""
    path = MODULES[module]
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            spec = ".".join(base + ([node.module] if node.module else []))
            targets = [f"{spec}.{a.name}" for a in node.names]
        else:
            continue
        for target in targets:
            resolved = _resolve(target)
            if resolved and resolved != module:
                found.add(resolved)
    return found


def layer_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "node":
        return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "node"
    return parts[0]


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def sql_strings(path: Path) -> list[tuple[int, str]]:
    return [
        (node.lineno, node.value.strip()[:60])
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value)
    ]


def may_hold_sql(module: str) -> bool:
    return (
        module.startswith(("node.stores.", "node.platform."))
        or (module.startswith("federation.") and module.endswith("_store"))
        or module.startswith("migrations")
    )


def test_no_import_cycles():
    graph = {m: imports_of(m) for m in MODULES}
    assert import_cycles(graph) == []


def test_each_layer_imports_only_the_layers_below_it():
    wrong = []
    for module in MODULES:
        mine = layer_of(module)
        if mine == "node":  # node.app, node.cli, node.__main__: the composition root
            continue
        for target in imports_of(module):
            theirs = layer_of(target)
            if theirs == mine or theirs in ALLOWED[mine] or (mine, target) in LEGACY:
                continue
            wrong.append(f"{module} ({mine}) imports {target} ({theirs})")
    assert wrong == []


def test_services_import_neither_federation_nor_web():
    for module in MODULES:
        if layer_of(module) == "services":
            assert not {t for t in imports_of(module) if t.split(".")[0] in ("federation", "web")}, module


def test_sql_lives_only_in_the_stores():
    outside = {
        f"{MODULES[m].relative_to(ROOT)}:{line}: {text}"
        for m in MODULES
        if not may_hold_sql(m)
        for line, text in sql_strings(MODULES[m])
    }
    assert outside == set()


def test_no_module_is_past_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in MODULES.values() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


# --- the checks themselves catch what they are for ---------------------------------------------------


def test_a_cycle_is_found():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_cycles(graph) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize(
    "text, found",
    [
        ("SELECT id FROM posts WHERE id = $1", True),
        ("INSERT INTO votes (a) VALUES ($1)", True),
        ("UPDATE agents SET karma = karma + 1", True),
        ("UPDATE peer_hosts AS h SET status = 'down'", True),
        ("DELETE FROM outbox_events", True),
        ("SELECT pg_notify('reef_inbox', '')", True),
        ("Create a submolt; you become its owner", False),
        ("Update of an actor without ids", False),
        ("Set delivery_backoff_max_seconds to at least", False),
    ],
)
def test_sql_is_recognised(text, found):
    assert bool(SQL.search(text)) is found


def test_layers_of_modules():
    assert layer_of("node.stores.posts") == "stores"
    assert layer_of("node.edge.ratelimit.actions") == "edge"
    assert layer_of("node.app") == "node"
    assert layer_of("federation.inbox") == "federation"
    # every module's imports resolve inside the project: a rename that left an import behind shows here
    assert "node.platform.errors" in imports_of("node.edge.validation")


# --- one way in for every write (issue 16) ------------------------------------------------------------

# A call into node.stores whose name says it writes. federation/ and web/ reach the domain through the
# services (the rules: bans, locks, counters, events live there); their own stores are exempt
# (federation/*_store.py, and the web's accounts and pages), and so is the audit log, which whoever acts writes.
WRITES = re.compile(
    r"^(insert|update|delete|mark|change|upsert|set|add|remove|link|unlink|replace|clear|bump|revoke|create|reopen|"
    r"close|ban|unban|restore|unremove)_"
)
EDGE_OWN_STORES = {"web_accounts", "web_pages"}
ANYONE_MAY = {"insert_audit"}


def store_writes_of(module: str) -> list[str]:
    """`store.function` for every call from `module` to a writing function of node.stores."""
    tree = ast.parse(MODULES[module].read_text())
    aliases: dict[str, str] = {}  # local name -> store module
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "node.stores":
            for a in node.names:
                aliases[a.asname or a.name] = a.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("node.stores."):
            for a in node.names:
                if WRITES.match(a.name):
                    aliases[a.asname or a.name] = f"{node.module.rsplit('.', 1)[1]}.{a.name}"
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id in aliases:
            store, name = aliases[f.value.id], f.attr
        elif isinstance(f, ast.Name) and "." in aliases.get(f.id, ""):
            store, name = aliases[f.id].split(".")
        else:
            continue
        if WRITES.match(name) and store not in EDGE_OWN_STORES and name not in ANYONE_MAY:
            found.append(f"{store}.{name}")
    return found


def test_federation_and_web_write_only_through_services():
    offenders = {
        m: writes for m in MODULES
        if m.split(".")[0] in ("federation", "web") and not m.endswith("_store")
        and (writes := store_writes_of(m))
    }
    assert offenders == {}, "call the service that owns these writes (its rules hold on every path)"


def test_store_writes_are_recognised(tmp_path, monkeypatch):
    path = tmp_path / "probe.py"
    path.write_text(
        "from node.stores import posts as posts_store\nfrom node.stores.comments import add_reply_count\n"
        "async def f(c):\n    await posts_store.mark_removed(c, 1)\n    await posts_store.get_post(c, 1)\n"
        "    await add_reply_count(c, 1, -1)\n"
    )
    monkeypatch.setitem(MODULES, "web.probe", path)
    assert store_writes_of("web.probe") == ["posts.mark_removed", "comments.add_reply_count"]
