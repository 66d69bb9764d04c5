"""What one `insync dbt` command did to each selected node, and the table people read."""

from __future__ import annotations

import difflib
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from insync.core import ConfigError

from ._manifest import DbtAsset

__all__ = ["BuildReport", "NodeOutcome"]

# Also the order of the summary line's counts.
_STYLE: Final = {
    "built": "green", "would build": "yellow", "reused": "dim", "reuse": "dim",
    "failed": "red", "test failed": "red", "skipped": "red",
}


@dataclass(frozen=True, slots=True)
class NodeOutcome:
    """`action` is built, reused, failed, test failed or skipped (status: would build, reuse)."""

    asset: DbtAsset
    action: str
    reason: str  # one line, for the report
    error: str = ""  # dbt's whole message for a failed node (OpenLineage's errorMessage)

    def to_json(self) -> dict[str, Any]:
        return {"unique_id": self.asset.unique_id, "name": self.asset.name,
                "key": str(self.asset.key), "resource_type": self.asset.resource_type,
                "action": self.action, "reason": self.reason}


@dataclass(frozen=True)
class BuildReport:
    """The outcome of `DbtProject.build/run/status`: one `NodeOutcome` per selected node.

    `invocations` counts dbt calls (0 when everything was reused; 1 usually; one more per layer
    of content-versioned nodes whose content really changed).
    """

    command: str
    run_id: str | None
    outcomes: Sequence[NodeOutcome]
    invocations: int
    timings: Mapping[str, float] = field(default_factory=dict)  # seconds per phase
    # `source: why` for each source read by a selected node that insync cannot observe: the
    # nodes reading it rebuild on every build.
    unobserved: Sequence[str] = ()

    def _names(self, *actions: str) -> list[str]:
        return [o.asset.name for o in self.outcomes if o.action in actions]

    @property
    def built(self) -> list[str]:
        """Names of the nodes dbt built and insync recorded (parents first)."""
        return self._names("built", "would build")

    @property
    def reused(self) -> list[str]:
        """Names of the nodes left as they were, because they were in sync."""
        return self._names("reused", "reuse")

    @property
    def failed(self) -> list[str]:
        """Names of the nodes that failed, whose tests failed, or that dbt skipped."""
        return self._names("failed", "test failed", "skipped")

    @property
    def success(self) -> bool:
        return not self.failed

    def outcome(self, name: str) -> NodeOutcome:
        """The outcome of the node with this name, unique id or asset key.

        :raises ConfigError: the node was not selected (the message names close ones).
        """
        for o in self.outcomes:
            if name in (o.asset.name, o.asset.unique_id, str(o.asset.key)):
                return o
        names = [o.asset.name for o in self.outcomes]
        close = difflib.get_close_matches(name, names, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else (
            "select it with --select, or look it up in report.outcomes")
        raise ConfigError(
            f"{name!r} was not among the {len(names)} selected nodes of this {self.command}; {hint}")

    def to_json(self) -> dict[str, Any]:
        return {"command": self.command, "run_id": self.run_id, "invocations": self.invocations,
                "success": self.success, "timings": dict(self.timings),
                "unobserved": list(self.unobserved),
                "nodes": [o.to_json() for o in self.outcomes]}

    def summary(self) -> str:
        counts = {action: 0 for action in _STYLE}
        for o in self.outcomes:
            counts[o.action] = counts.get(o.action, 0) + 1
        parts = ", ".join(f"{n} {action}" for action, n in counts.items() if n)
        parts = parts or "nothing selected"
        calls = "" if self.command == "status" else f" ({self.invocations} dbt call(s))"
        return f"insync dbt {self.command}: {parts}{calls}"

    def render(self, *, width: int = 120, color: bool = False) -> str:
        """The summary table as text (what the CLI prints)."""
        from rich.console import Console
        from rich.table import Table

        table = Table("node", "asset key", "action", "reason", box=None, show_edge=False)
        for o in self.outcomes:
            style = _STYLE.get(o.action, "")
            table.add_row(o.asset.name, str(o.asset.key), f"[{style}]{o.action}[/]", o.reason)
        buffer = io.StringIO()
        console = Console(file=buffer, width=width, force_terminal=color, color_system=None
                          if not color else "auto", highlight=False)
        console.print(table)
        for line in self.unobserved:
            console.print(f"not observed (its readers always rebuild): {line}")
        console.print(self.summary())
        return buffer.getvalue()

    def __str__(self) -> str:
        return self.render()
