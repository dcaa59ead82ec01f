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
