"""Compile only the nodes whose compilation inputs changed; reuse the rest from the last run.

Code versions are taken from compiled SQL, and compiling a whole project through dbt costs
seconds. So the code version of every model and snapshot is kept in `target/insync_compiled.json`
next to dbt's own `partial_parse.msgpack`, each under a fingerprint of what its compilation and
its code version read:

- the whole-project context: dbt and adapter versions, the warehouse type, dbt's own partial
  parsing state check (cli `--vars`, profile and target names, profile contents, every
  `dbt_project.yml`, the env vars those read), the env vars models read (`env_var()`), the
  user's project options, and the text of every macro (a macro edit recompiles everything:
  which macros a node calls through `adapter.dispatch` is not recorded reliably);
- insync's own code version rules (the source of `_manifest.py` and `_sql.py`);
- the node itself: raw code, language, rendered config, meta, contract columns, where it
  builds (`this`);
- each parent: its relation name (what `ref()`/`source()` render), or for an ephemeral parent,
  its own fingerprint (dbt inlines its SQL).

A node whose compiled SQL may depend on the warehouse or on the whole graph (its code or a
macro it calls runs a query, inspects relations or reads `graph`) is compiled every time. The
cache is only a shortcut: deleting the file gives the same versions from a full compile
(tests/dbt/test_compile.py checks that).
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import xxhash

from ._manifest import _jsonable

if TYPE_CHECKING:
    from dbt.contracts.graph.manifest import Manifest

__all__ = ["CACHE_FILE", "CompiledCache", "compiled_nodes"]

log = logging.getLogger("insync.adapters.dbt")

CACHE_FILE: Final = "insync_compiled.json"
_FORMAT: Final = 1
# Text in a node or in a macro it calls that makes its compiled SQL depend on the warehouse
# or on the whole graph: no fingerprint of ours covers that.
_INTROSPECTION: Final = ("run_query", "statement(", "load_result", "adapter.get_", "adapter.list_",
                         "adapter.execute", "graph.", "get_columns_in", "get_relation")
# is_incremental() asks the warehouse, but insync compiles with --full-refresh: always false.
_DETERMINISTIC_MACROS: Final = frozenset({"macro.dbt.is_incremental"})
_COMPILED_TYPES: Final = frozenset({"model", "snapshot"})
# The modules whose rules turn compiled SQL into a code version: a change to them is a change
# to every cached version.
_RULES: Final = ("_manifest.py", "_sql.py")


def compiled_nodes(manifest: Manifest) -> list[str]:
    """Unique ids of the nodes whose compiled SQL makes their code version (not ephemeral)."""
    return [uid for uid, node in manifest.nodes.items()
            if node.resource_type in _COMPILED_TYPES and node.config.materialized != "ephemeral"]


class CompiledCache:
    """The code versions of the last compile, by node, with the fingerprint each was taken at."""

    def __init__(self, path: str, manifest: Manifest, project_args: Sequence[str]) -> None:
        self.path = path
        self._manifest = manifest
        self.fingerprints = _fingerprints(manifest, _context(manifest, project_args))
        self._entries = _read(path)

    def reusable(self, ids: Iterable[str]) -> dict[str, str]:
        """Code versions of those of `ids` compiled before at their current fingerprint."""
        found: dict[str, str] = {}
        for uid in ids:
            entry = self._entries.get(uid)
            fingerprint = self.fingerprints.get(uid)
            if entry is not None and fingerprint is not None and entry[0] == fingerprint:
                found[uid] = entry[1]
        return found

    def save(self, compiled: Mapping[str, str]) -> None:
        """Keep code versions (by unique id) for the next run; nodes no longer there are dropped.

        The file is replaced atomically: a concurrent reader sees the old or the new one.
        """
        entries = {uid: [self.fingerprints[uid], code] for uid, code in compiled.items()
                   if uid in self.fingerprints and not self.fingerprints[uid].startswith("always:")}
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            temporary = f"{self.path}.{os.getpid()}.tmp"
            with open(temporary, "w", encoding="utf-8") as out:
                json.dump({"format": _FORMAT, "nodes": entries}, out)
            os.replace(temporary, self.path)
        except OSError as exc:  # a read-only target dir only costs the next run a full compile
            log.warning("could not save code versions to %s (%s); the next run compiles everything",
                        self.path, exc)


def _read(path: str) -> dict[str, tuple[str, str]]:
    try:
        with open(path, encoding="utf-8") as source:
            data = json.load(source)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable %s (%s): compiling every node", path, exc)
        return {}
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        return {}
    nodes = data.get("nodes")
    if not isinstance(nodes, dict):
        return {}
    return {uid: (entry[0], entry[1]) for uid, entry in nodes.items()
            if isinstance(entry, list) and len(entry) == 2
            and all(isinstance(part, str) for part in entry)}


def _version_of(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return ""


def _context(manifest: Manifest, project_args: Sequence[str]) -> str:
    """Fingerprint of what every node's compilation reads (see the module docstring)."""
    check = manifest.state_check
    adapter = str(getattr(manifest.metadata, "adapter_type", "") or "")
    here = Path(__file__).parent
    return _digest({
        "format": _FORMAT,
        "insync": [(here / name).read_text(encoding="utf-8") for name in _RULES],
        "dbt": _version_of("dbt-core"),
        "adapter": [adapter, _version_of(f"dbt-{adapter}")],
        "state": [check.vars_hash.checksum, check.profile_hash.checksum,
                  check.project_env_vars_hash.checksum, check.profile_env_vars_hash.checksum,
                  sorted((name, h.checksum) for name, h in check.project_hashes.items())],
        "env": sorted((name, str(value)) for name, value in manifest.env_vars.items()),
        "args": list(project_args),
        "macros": sorted((uid, macro.macro_sql) for uid, macro in manifest.macros.items()),
    })


def _digest(value: Any) -> str:
    # Not core's fingerprint_value: this runs over every node on every command, and the C JSON
    # encoder is ten times faster; types need no keeping apart inside one cache.
    return xxhash.xxh3_128_hexdigest(json.dumps(value, sort_keys=True, default=str).encode())


def _fingerprints(manifest: Manifest, context: str) -> dict[str, str]:
    """The compile fingerprint of every model and snapshot (ephemeral ones included); an
    `always:` one for a node that must be compiled every time."""
    introspects = _MacroScan(manifest)
    out: dict[str, str] = {}

    def fingerprint(uid: str, seen: frozenset[str]) -> str:
        if uid in out:
            return out[uid]
        node = manifest.nodes[uid]
        parents: list[Any] = []
        for parent in getattr(node.depends_on, "nodes", ()):
            other = manifest.nodes.get(parent)
            if other is not None and other.config.materialized == "ephemeral" and parent not in seen:
                parents.append(["ephemeral", parent, fingerprint(parent, seen | {uid})])
            else:
                source = other if other is not None else manifest.sources.get(parent)
                parents.append([parent, getattr(source, "relation_name", None)])
        raw = getattr(node, "raw_code", "") or ""
        contract = getattr(node, "contract", None)
        digest = _digest({
            "context": context, "id": uid, "raw": raw,
            "language": str(getattr(node, "language", "sql")),
            "config": _jsonable(node.config.to_dict(omit_none=True)),
            "meta": _jsonable(getattr(node, "meta", None) or {}),
            "columns": {c: getattr(col, "data_type", None) for c, col in node.columns.items()}
            if contract is not None and contract.enforced else None,
            "relation": [node.database, node.schema, node.alias, node.relation_name],
            "parents": parents,
        })
        live = any(marker in raw for marker in _INTROSPECTION) or any(
            introspects(m) for m in getattr(node.depends_on, "macros", ()))
        out[uid] = ("always:" if live else "") + digest
        return out[uid]

    for uid, node in manifest.nodes.items():
        if node.resource_type in _COMPILED_TYPES:
            fingerprint(uid, frozenset())
    return out


class _MacroScan:
    """Whether a macro, or one it calls, may query the warehouse or read the graph."""

    def __init__(self, manifest: Manifest) -> None:
        self._macros = manifest.macros
        self._known: dict[str, bool] = {}

    def __call__(self, start: str) -> bool:
        stack, seen, found = [start], set(), False
        while stack and not found:
            uid = stack.pop()
            if uid in seen or uid in _DETERMINISTIC_MACROS:
                continue
            seen.add(uid)
            if uid in self._known:
                found = self._known[uid]
                continue
            macro = self._macros.get(uid)
            if macro is None:
                continue
            found = any(marker in macro.macro_sql for marker in _INTROSPECTION)
            stack.extend(getattr(macro.depends_on, "macros", ()))
        self._known[start] = found
        return found

