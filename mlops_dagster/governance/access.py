"""Access rules: the access-control matrix from config, checked before governance actions."""

from __future__ import annotations

from .audit import AuditLog, actor


class AccessDenied(PermissionError):
    """The actor's roles do not allow the action; the message says who may."""


def authorize(settings, lakehouse, action: str, obj: str, run_id: str) -> str:
    """The actor, if the matrix lets them ``action``; otherwise an audited ``AccessDenied``."""
    who = actor()
    access = settings.governance.access
    if not access.enforce:
        return who
    mine, allowed = access.roles_of(who), access.allowed_roles(action)
    if set(mine) & set(allowed):
        return who
    message = (
        f"{who} (roles: {', '.join(mine) or 'none'}) may not {action} {obj} on target {settings.target}; "
        f"roles that may: {', '.join(allowed) or 'none'} (governance.access.roles in the target config)"
    )
    AuditLog.of_run(lakehouse, settings, run_id).record("refused", obj, attempted=action, reason=message)
    raise AccessDenied(message)
