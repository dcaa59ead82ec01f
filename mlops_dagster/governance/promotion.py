"""Promotion: whether a challenger may become champion (validated, approved where required, not
worse than the champion on the same holdout), and how a validated champion moves on to the next
environment (deploy model or deploy code). The registry and lakehouse are passed in."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .approvals import is_approved


def code_version() -> str:
    """The code being promoted: MLOPS_CODE_VERSION (CI sets it), else the git commit, else unknown."""
    import subprocess

    if os.environ.get("MLOPS_CODE_VERSION"):
        return os.environ["MLOPS_CODE_VERSION"]
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                timeout=10,
                cwd=Path(__file__).parent,
            ).stdout.strip()
            or "unknown"
        )
    except OSError:
        return "unknown"


def promotion_verdict(
    registry,
    lakehouse,
    settings,
    version: str,
    metrics: dict[str, float],
    champion_metrics: dict[str, float] | None,
) -> tuple[bool, str]:
    """Whether challenger ``version`` (with its holdout ``metrics``) may replace the champion (scored
    on the same holdout: ``champion_metrics``, None when there is none), and why.

    The validation outcome is re-read from the registry: validation gates promotion even when the
    challenger's check did not run (e.g. a hand-picked selection in the UI)."""
    from ..ml.evaluation import compare_to_champion

    found = registry.version(version)
    if not registry.is_validated(found):
        return (
            False,
            f"version {version} has not passed validation (status: {registry.validation_status(found)})",
        )
    if settings.governance.require_approval and not is_approved(lakehouse, settings, version):
        return False, (
            f"version {version} has no approval record (mlops approve --version {version} --comment '...')"
        )
    val = settings.validation
    return compare_to_champion(metrics, champion_metrics, val.compare_metric, val.max_regression)


def decision(promoted: bool, version: str, champion_version: Any, reason: str, alias: str) -> str:
    """What happened to the ``alias`` (the champion's): moved to challenger ``version``, or kept on
    ``champion_version`` (None: there is no champion)."""
    if promoted:
        return f"promoted version {version} to {alias}: {reason}"
    kept = champion_version if champion_version is not None else "none"
    return f"kept version {kept} as {alias}; challenger {version} not promoted: {reason}"


def champion_to_move_on(registry, settings, alias: str) -> tuple[Any, str | None]:
    """(the version with ``alias``, None) if it may move on to the next environment; otherwise
    (that version or None, why not): there must be a next environment, and the version must have
    passed validation here."""
    if settings.governance.promotion.next is None:
        return None, f"target {settings.target} has no next environment (governance.promotion.next)"
    champion = registry.by_alias(alias)
    if champion is None:
        return None, f"{settings.mlflow.model_name} has no {alias} to promote"
    if not registry.is_validated(champion):
        return (
            champion,
            f"{settings.mlflow.model_name} v{champion.version} has not passed validation here: it cannot move on",
        )
    return champion, None


def move_to_next_environment(registry, settings, version: str, reason: str) -> tuple[dict[str, Any], str]:
    """Move ``version`` on (audit details, outcome). deploy_model: copied to the next environment's
    registered model, where it arrives as challenger and is validated and promoted with that
    environment's own data. deploy_code: nothing is copied; the next environment retrains from
    this code (its version is recorded)."""
    promotion, obj = settings.governance.promotion, f"{settings.mlflow.model_name} v{version}"
    destination = promotion.next
    details: dict[str, Any] = {
        "pattern": promotion.pattern,
        "to_target": destination.target,
        "reason": reason,
    }
    if promotion.pattern == "deploy_model":
        copied = registry.copy_to(version, destination.model_name, destination.registry_uri)
        details.update(copied_to=f"{destination.model_name}/{copied.version}")
        return (
            details,
            f"copied {obj} to {destination.model_name} version {copied.version} ({destination.target})",
        )
    details.update(code_version=code_version())
    return details, (
        f"{obj} validated on {settings.target}: {destination.target} retrains from code "
        f"{details['code_version']} (deploy_code)"
    )
