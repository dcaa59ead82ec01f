"""The access-control matrix as Unity Catalog grants, for a Databricks target's catalog and model.

``grant_plan`` is pure: from the matrix, the privileges each role's group should hold on the
target's catalog, the project schema and the registered model, plus the privileges this project
manages there (so a right taken out of the matrix is revoked, and grants made by hand for other
purposes are left alone). ``grant_changes`` reads the difference from the workspace, and
``apply_grants`` sends it through databricks-sdk.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..settings import Settings

# Catalog access levels of the matrix, as Unity Catalog privileges on the catalog (inherited by
# its schemas, tables and volumes).
CATALOG_PRIVILEGES = {
    "NONE": [],
    "READ": ["USE_CATALOG", "USE_SCHEMA", "SELECT", "READ_VOLUME", "EXECUTE"],
    "READ_WRITE": [
        "USE_CATALOG",
        "USE_SCHEMA",
        "SELECT",
        "READ_VOLUME",
        "EXECUTE",
        "MODIFY",
        "CREATE_TABLE",
        "CREATE_VOLUME",
        "WRITE_VOLUME",
    ],
}
# Registry rights: registering needs CREATE_MODEL on the schema; moving aliases (approve, promote,
# restore, rollback) needs MANAGE on the model; reading (loading, serving) needs EXECUTE on it.
SCHEMA_PRIVILEGES = {"register": ["CREATE_MODEL"]}
MODEL_PRIVILEGES = {
    "read": ["EXECUTE"],
    "approve": ["MANAGE"],
    "promote": ["MANAGE"],
    "restore": ["MANAGE"],
    "rollback": ["MANAGE"],
}


@dataclass(frozen=True)
class Grant:
    securable_type: str  # catalog | schema | function (Unity Catalog's grants API calls models functions)
    full_name: str
    principal: str
    privileges: tuple[str, ...]  # what the group should hold
    managed: tuple[str, ...]  # what this project grants on the securable (the rest is left alone)


def _unique(items) -> tuple[str, ...]:
    return tuple(sorted(set(items)))


def grant_plan(settings: Settings) -> list[Grant]:
    access, env = settings.governance.access, settings.target
    securables = [
        (
            "catalog",
            settings.catalog,
            lambda r: CATALOG_PRIVILEGES[r.catalogs.get(env, "NONE")],
            [p for ps in CATALOG_PRIVILEGES.values() for p in ps],
        ),
        (
            "schema",
            f"{settings.catalog}.{settings.schema_}",
            lambda r: [p for right in r.registry for p in SCHEMA_PRIVILEGES.get(right, [])],
            [p for ps in SCHEMA_PRIVILEGES.values() for p in ps],
        ),
        (
            "function",
            settings.mlflow.model_name,
            lambda r: [p for right in r.registry for p in MODEL_PRIVILEGES.get(right, [])],
            [p for ps in MODEL_PRIVILEGES.values() for p in ps],
        ),
    ]
    return [
        Grant(kind, name, access.group_of(role), _unique(wanted(rights)), _unique(managed))
        for kind, name, wanted, managed in securables
        for role, rights in sorted(access.matrix.items())
    ]


def grant_changes(workspace, plan: list[Grant]) -> list[tuple[Grant, list[str], list[str]]]:
    """What bringing each group's privileges to the plan takes: (grant, privileges to add, managed
    privileges to revoke), for the grants not already in place. Reads only."""
    changes = []
    for grant in plan:
        current = workspace.grants.get(grant.securable_type, grant.full_name, principal=grant.principal)
        held = {
            p.value if hasattr(p, "value") else p
            for a in current.privilege_assignments or []
            if a.principal == grant.principal
            for p in a.privileges or []
        }
        add = sorted(set(grant.privileges) - held)
        remove = sorted((held & set(grant.managed)) - set(grant.privileges))
        if add or remove:
            changes.append((grant, add, remove))
    return changes


def apply_grants(workspace, plan: list[Grant]) -> list[dict]:
    """Bring each group's privileges to the plan: add what is missing, revoke managed privileges
    the plan no longer gives. Returns the changes made (empty when already in place)."""
    from databricks.sdk.service.catalog import PermissionsChange, Privilege

    made = []
    for grant, add, remove in grant_changes(workspace, plan):
        workspace.grants.update(
            grant.securable_type,
            grant.full_name,
            changes=[
                PermissionsChange(
                    principal=grant.principal,
                    add=[Privilege(p) for p in add],
                    remove=[Privilege(p) for p in remove],
                )
            ],
        )
        made.append(
            {
                "securable": f"{grant.securable_type} {grant.full_name}",
                "principal": grant.principal,
                "added": ", ".join(add),
                "revoked": ", ".join(remove),
            }
        )
    return made
