"""Lineage of a model version: back to the exact table versions and landing files (or source table
versions) it learned from, forward to the endpoints serving it and the prediction batches it
scored. Built from what the lifecycle records anyway: model version tags and the Delta commit
metadata of every write."""

from __future__ import annotations

from typing import Any


def data_commit(lakehouse, table: str, version: int, key: str) -> dict[str, Any]:
    """The newest commit at or before ``version`` that carries ``key`` in its metadata (the data
    write behind that version: later property changes or restores carry no lineage of their own)."""
    return next((h for h in lakehouse.history(table) if h["version"] <= version and key in h), {})


def model_lineage(settings, lakehouse, registry, version: str, serving=None) -> dict[str, Any]:
    mv = registry.version(version)
    training_set, ts_version = mv.tags["training_set"], int(mv.tags["training_set_version"])
    ts_commit = data_commit(lakehouse, training_set, ts_version, "features_table")
    upstream: dict[str, Any] = {"training_set": (training_set, ts_version)}
    raw = None
    for role in ("features", "labels"):
        if f"{role}_table" in ts_commit:
            table, table_version = ts_commit[f"{role}_table"], int(ts_commit[f"{role}_version"])
            upstream[role] = (table, table_version)
            source = data_commit(lakehouse, table, table_version, "source_table")
            if source:
                raw = (source["source_table"], int(source["source_version"]))
    files: list[str] = []
    if raw:
        upstream["raw"] = raw
        for commit in lakehouse.history(raw[0]):
            if commit["version"] <= raw[1]:  # landing files, or a source table's versions read
                for key in ("landing_files", "source_reads"):
                    files.extend(filter(None, commit.get(key, "").split(";")))
    predictions_table = settings.table(settings.names.predictions)
    scored = []
    if lakehouse.exists(predictions_table):
        scored = sorted(
            h["version"]
            for h in lakehouse.history(predictions_table)
            if h.get("model_version") == str(version)
        )
    endpoints = []
    state = serving.describe(settings.serving.endpoint) if serving is not None else None
    if state and state.get("config"):
        names = {e["name"]: str(e["entity_version"]) for e in state["config"]["served_entities"]}
        for route in state["config"]["traffic_config"]["routes"]:
            if names[route["served_model_name"]] == str(version):
                endpoints.append((settings.serving.endpoint, route["traffic_percentage"]))
    return {
        "model": (settings.mlflow.model_name, str(version)),
        "aliases": list(mv.aliases or []),
        "mlflow_run": mv.run_id,
        "upstream": upstream,
        "landing_files": sorted(set(files)),
        "prediction_versions": (predictions_table, scored),
        "endpoints": endpoints,
    }


def format_lineage(lineage: dict[str, Any]) -> str:
    name, version = lineage["model"]
    lines = [
        f"{name} v{version}  (aliases: {', '.join(lineage['aliases']) or 'none'}; MLflow run {lineage['mlflow_run']})",
        "  learned from:",
    ]
    for role, (table, table_version) in lineage["upstream"].items():
        lines.append(f"    {role:<13} {table} v{table_version}")
    lines.append(f"    sources       {', '.join(lineage['landing_files']) or 'none recorded'}")
    lines.append("  used by:")
    table, versions = lineage["prediction_versions"]
    lines.append(f"    predictions   {table} versions {', '.join(map(str, versions)) or 'none'}")
    served = ", ".join(f"{e} ({p}% of traffic)" for e, p in lineage["endpoints"]) or "no endpoint"
    lines.append(f"    serving       {served}")
    return "\n".join(lines)
