"""Approvals of model versions for promotion (an append-only Delta table)."""

from ..settings import Settings

APPROVALS_TABLE = "model_approvals"


def is_approved(lakehouse, settings: Settings, version: str) -> bool:
    """Whether an approval record exists for this exact version of the project's model."""
    table = settings.table(APPROVALS_TABLE)
    if not lakehouse.exists(table):
        return False
    approvals = lakehouse.read(table, columns=["model_name", "version"])
    mine = (approvals["model_name"] == settings.mlflow.model_name) & (approvals["version"] == str(version))
    return bool(mine.any())


def approvable_version(registry, version: str, model_name: str) -> tuple[str, str | None]:
    """(the version number, None) if ``version`` (a number, or an alias such as ``challenger``) may
    be approved; otherwise (what it resolved to, why not). Only validated versions can be approved."""
    if not version.isdigit():
        aliased = registry.by_alias(version)
        if aliased is None:
            return version, (
                f"{model_name} has no version with alias {version!r}: name a version "
                "number, or the alias of an existing version"
            )
        version = str(aliased.version)
    if not registry.is_validated(registry.version(version)):
        return (
            version,
            f"{model_name} v{version} has not passed validation: only validated versions can be approved",
        )
    return version, None


def record_approval(lakehouse, settings: Settings, version: str, approver: str, comment: str, run_id: str):
    """Append the approval of ``version`` by ``approver`` to the approvals table; returns its time."""
    import pandas as pd

    now = pd.Timestamp.now(tz="UTC")
    lakehouse.write(
        settings.table(APPROVALS_TABLE),
        pd.DataFrame(
            [
                {
                    "model_name": settings.mlflow.model_name,
                    "version": version,
                    "approver": approver,
                    "approved_at": now,
                    "comment": comment,
                    "target": settings.target,
                    "dagster_run_id": run_id,
                }
            ]
        ),
        "append",
        properties={"delta.appendOnly": "true"},
        description="Approvals of model versions for promotion: who, when, why.",
    )
    return now
