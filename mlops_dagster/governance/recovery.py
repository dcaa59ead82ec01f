"""Recovery: which version a champion rolls back to, which table versions may be restored, and
what a deleted model version was registered from. The registry and lakehouse are passed in."""

from __future__ import annotations

import json
from typing import Any


def rollback_target(registry, champion, to_version: str) -> tuple[str, str | None]:
    """(the version to make champion again, None), or (that version, why not). ``to_version``
    empty: the version the current ``champion`` replaced (its ``previous_champion`` tag). The
    target must be another version, and one that passed validation."""
    target = to_version or champion.tags.get("previous_champion", "")
    if not target:
        return target, f"version {champion.version} records no previous champion: name to_version"
    if target == str(champion.version):
        return target, f"version {target} already is the champion"
    if not registry.is_validated(registry.version(target)):
        return target, f"version {target} has not passed validation"
    return target, None


def restore_refusal(table: str, version: int, current: int, oldest: int = 0) -> str | None:
    """Why ``table`` cannot be restored to ``version`` (its current version is ``current``; the oldest
    version its retention keeps is ``oldest``), or None: only an earlier, retained version can be
    brought back."""
    if not 0 <= version < current:
        return f"{table} has versions 0..{current}; choose an earlier one than the current {current}"
    if version < oldest:
        return (
            f"{table} version {version} is past its retention (retention.table_versions_days): "
            f"the oldest version still restorable is {oldest}"
        )
    return None


def is_registered(registry, version: str) -> bool:
    """Whether ``version`` exists in the registry (a deleted one does not)."""
    from mlflow.exceptions import MlflowException

    try:
        registry.version(version)
    except MlflowException:
        return False
    return True


def last_registration(lakehouse, audit_table: str, obj: str) -> dict[str, Any] | None:
    """The details of the newest ``model_registered`` event of ``obj`` (``<model> v<version>``) in
    the audit log: its logged model's URI, MLflow run and training set. None if it has none."""
    log = lakehouse.read(audit_table)
    registered = log[(log["action"] == "model_registered") & (log["object"] == obj)]
    if registered.empty:
        return None
    return json.loads(registered.sort_values("event_time")["details"].iloc[-1])
