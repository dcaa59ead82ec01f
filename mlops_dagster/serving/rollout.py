"""Rollout plans: the sequence of endpoint configs that moves an endpoint to its desired state.

Pure functions over plain dicts (the Databricks endpoint config shape plus ``shadow_routes``),
so every strategy is testable without a server.
"""

from __future__ import annotations

from typing import Any


def entity(model_name: str, version: str, workload_size: str, scale_to_zero: bool) -> dict[str, Any]:
    return {
        "name": f"{model_name.split('.')[-1]}-{version}",
        "entity_name": model_name,
        "entity_version": str(version),
        "workload_size": workload_size,
        "scale_to_zero_enabled": scale_to_zero,
    }


def config(entities: list[dict], percents: list[int], shadows: list[dict] | None = None) -> dict[str, Any]:
    return {
        "served_entities": entities,
        "traffic_config": {
            "routes": [
                {"served_model_name": e["name"], "traffic_percentage": p} for e, p in zip(entities, percents)
            ]
        },
        "shadow_routes": [{"served_model_name": e["name"], "mirror_percentage": 100} for e in shadows or []],
    }


def serving_version(current: dict[str, Any] | None) -> str | None:
    """The version that takes all traffic in a live config (None if absent or split)."""
    if not current:
        return None
    routes = {r["served_model_name"]: r["traffic_percentage"] for r in current["traffic_config"]["routes"]}
    for e in current["served_entities"]:
        if routes.get(e["name"]) == 100:
            return str(e["entity_version"])
    return None


def _same(a: dict[str, Any] | None, b: dict[str, Any]) -> bool:
    if not a:
        return False
    key = lambda c: (  # noqa: E731
        sorted((e["entity_name"], str(e["entity_version"])) for e in c["served_entities"]),
        sorted((r["served_model_name"], int(r["traffic_percentage"])) for r in c["traffic_config"]["routes"]),
        sorted(s["served_model_name"] for s in c.get("shadow_routes") or []),
    )
    return key(a) == key(b)


def plan(
    strategy: str,
    model_name: str,
    champion: str,
    challenger: str | None,
    current: dict[str, Any] | None,
    canary_percent: int = 10,
    workload_size: str = "Small",
    scale_to_zero: bool = False,
) -> list[dict[str, Any]]:
    """Configs to apply in order (empty: the endpoint already is where it should be).

    ``challenger`` is only passed when it passed validation and differs from the champion.
    """
    make = lambda v: entity(model_name, v, workload_size, scale_to_zero)  # noqa: E731
    target = config([make(champion)], [100])
    if strategy == "canary" and challenger:
        target = config([make(champion), make(challenger)], [100 - canary_percent, canary_percent])
    elif strategy == "shadow" and challenger:
        target = config([make(champion), make(challenger)], [100, 0], shadows=[make(challenger)])
    if _same(current, target):
        return []
    live = serving_version(current)
    if strategy == "blue_green" and live and live != str(champion):
        blue, green = make(live), make(champion)
        return [
            config([blue, green], [100, 0]),  # green loads and is smoke-tested; blue still answers
            config([blue, green], [0, 100]),  # switch
            target,  # retire blue
        ]
    return [target]
