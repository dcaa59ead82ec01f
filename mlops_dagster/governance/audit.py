"""The audit log: an append-only Delta table of lifecycle actions (who, when, where, what).

The table carries ``delta.appendOnly``, so Delta itself refuses to update or delete its rows.
"""

from __future__ import annotations

import getpass
import json
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

AUDIT_TABLE = "audit_log"
ACTIONS = (
    "table_written",
    "model_registered",
    "model_validated",
    "alias_changed",
    "promoted",
    "refused",
    "deployed",
    "deploy_failed",
    "approved",
    "rolled_back",
    "restored",
    "granted",
    "housekept",
    "archived",
    "deleted",
)


def actor() -> str:
    """Who acts: ``MLOPS_USER`` if set (CI, service principals), else the OS user."""
    return os.environ.get("MLOPS_USER") or getpass.getuser()


def audit_event(
    action: str, obj: str, target: str, run_id: str | None = None, **details: Any
) -> dict[str, Any]:
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}; known: {', '.join(ACTIONS)}")
    return {
        "event_id": uuid.uuid4().hex,
        "event_time": datetime.now(UTC),
        "actor": actor(),
        "target": target,
        "action": action,
        "object": obj,
        "dagster_run_id": run_id or "",
        "details": json.dumps(details, default=str, sort_keys=True),
    }


def record(lakehouse, table: str, events: list[dict[str, Any]]) -> None:
    """Append events (from ``audit_event``) to the audit table, creating it append-only."""
    import pandas as pd

    if events:
        lakehouse.write(
            table,
            pd.DataFrame(events),
            "append",
            properties={"delta.appendOnly": "true"},
            description="Append-only log of lifecycle actions: actor, time, target, object, details.",
        )


def table_written(infos: list, target: str, run_id: str) -> list[dict[str, Any]]:
    """One ``table_written`` event per TableInfo (table name, new Delta version, rows, operation)."""
    return [
        audit_event(
            "table_written",
            info.name,
            target,
            run_id,
            delta_version=info.version,
            rows=info.num_rows,
            operation=info.operation,
        )
        for info in infos
        if info is not None
    ]


@dataclass(frozen=True)
class AuditLog:
    """The audit log as one run writes it: the table, the target and the run id said once.

    ``AuditLog.of_run(lakehouse, settings, context.run.run_id)`` in an asset or op, then
    ``audit.record("promoted", obj, reason=...)`` or ``audit.tables_written([info])``."""

    lakehouse: Any
    table: str
    target: str
    run_id: str | None

    @classmethod
    def of_run(cls, lakehouse, settings, run_id: str | None) -> AuditLog:
        return cls(lakehouse, settings.table(AUDIT_TABLE), settings.target, run_id)

    def event(self, action: str, obj: str, **details: Any) -> dict[str, Any]:
        return audit_event(action, obj, self.target, self.run_id, **details)

    def record(self, action: str, obj: str, **details: Any) -> None:
        self.record_events([self.event(action, obj, **details)])

    def record_events(self, events: list[dict[str, Any]]) -> None:
        record(self.lakehouse, self.table, events)

    def tables_written(self, infos: list) -> None:
        self.record_events(table_written(infos, self.target, self.run_id or ""))
