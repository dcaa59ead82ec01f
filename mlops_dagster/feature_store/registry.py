"""The feature registry: which feature tables exist, what their features mean, who owns them,
which Delta version is online and which model versions were trained on them.

Declared in ``feature_store.tables``; stored with each Delta table (comment, properties, column
comments) when it is written; model usage comes from the ``feature_lookups`` tag every
registered model version carries (the tables and Delta versions its training set looked up).
"""

from __future__ import annotations

import json
from typing import Any

FEATURE_LOOKUPS_TAG = "feature_lookups"


def registry_properties(spec) -> dict[str, str]:
    """A registry entry as Delta table properties (TBLPROPERTIES)."""
    properties = {
        "primary_key": ",".join(spec.keys),
        "owner": spec.owner,
        "feature_store.tags": json.dumps(spec.tags, sort_keys=True),
    }
    if spec.timestamp_key:
        properties["timestamp_key"] = spec.timestamp_key
    return properties


def model_usage(client) -> dict[str, list[dict[str, Any]]]:
    """Feature table -> the model versions whose training looked it up (and at which Delta version)."""
    usage: dict[str, list[dict[str, Any]]] = {}
    for mv in client.search_model_versions(max_results=10_000):
        lookups = json.loads(mv.tags.get(FEATURE_LOOKUPS_TAG) or "[]")
        # Search results carry no aliases; the version itself does.
        aliases = sorted(client.get_model_version(mv.name, mv.version).aliases or []) if lookups else []
        for lookup in lookups:
            usage.setdefault(lookup["table"], []).append(
                {
                    "model": mv.name,
                    "version": str(mv.version),
                    "table_version": lookup["version"],
                    "aliases": aliases,
                }
            )
    for versions in usage.values():
        versions.sort(key=lambda u: (u["model"], int(u["version"])))
    return usage


def feature_registry(settings, lakehouse, online_store=None, mlflow_client=None) -> list[dict[str, Any]]:
    """Every declared feature table with its features, versions and users."""
    usage = model_usage(mlflow_client) if mlflow_client is not None else {}
    entries = []
    for short, spec in settings.feature_store.tables.items():
        name = settings.feature_table(short)
        exists = lakehouse.exists(name)
        comments = lakehouse.column_comments(name) if exists else {}
        declared = spec.columns
        features = [
            {
                "name": f,
                "dtype": (declared[f].dtype if f in declared and declared[f].dtype else None)
                or (settings.feature_dtype(f) if short == settings.names.features else "?"),
                "description": comments.get(f) or (declared[f].description if f in declared else ""),
            }
            for f in settings.feature_names(short)
        ]
        online = None
        if spec.online and online_store is not None:
            try:
                version = online_store.published_version(name)
                online = f"v{version}" if version is not None else "not published"
            except Exception as exc:  # the listing still shows the rest when the online store is down
                online = f"unavailable ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        entries.append(
            {
                "table": name,
                "description": (lakehouse.description(name) if exists else None) or spec.description,
                "owner": spec.owner,
                "tags": dict(spec.tags),
                "keys": list(spec.keys),
                "timestamp_key": spec.timestamp_key,
                "delta_version": lakehouse.version(name) if exists else None,
                "online": online,
                "features": features,
                "used_by": usage.get(name, []),
            }
        )
    return entries


def format_registry(entries: list[dict[str, Any]]) -> str:
    lines = []
    for e in entries:
        version = f"v{e['delta_version']}" if e["delta_version"] is not None else "not written yet"
        keys = " + ".join(e["keys"]) + (f" as of {e['timestamp_key']}" if e["timestamp_key"] else "")
        tags = ", ".join(f"{k}={v}" for k, v in e["tags"].items()) or "none"
        lines += [
            f"{e['table']}  ({version}; online: {e['online'] or 'no'})",
            f"  {e['description']}",
            f"  owner: {e['owner']}   keys: {keys}   tags: {tags}",
            f"  features ({len(e['features'])}):",
        ]
        width = max((len(f["name"]) for f in e["features"]), default=0)
        for f in e["features"]:
            lines.append(f"    {f['name']:<{width}}  {f['dtype']:<7} {f['description']}")
        used = ", ".join(
            f"{u['model']} v{u['version']} (table v{u['table_version']}"
            + (f", {'/'.join(u['aliases'])}" if u["aliases"] else "")
            + ")"
            for u in e["used_by"]
        )
        lines += [f"  used by: {used or 'no registered model yet'}", ""]
    return "\n".join(lines).rstrip() + "\n"
