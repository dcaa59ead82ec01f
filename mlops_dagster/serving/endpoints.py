"""The serving gateway's endpoints: the served models and applied config of each endpoint, its
Databricks ServingEndpointDetailed shape, and the validation of endpoint names and config specs
(served entities, traffic routes, shadow routes) with a 400 naming the field at fault."""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass, field
from typing import Any

from ..settings import ServingSettings
from .admission import Admission
from .batching import Batcher, LoadedModel
from .payload import BadRequest

MAX_QUEUED_REQUESTS = ServingSettings.model_fields["max_queued_requests"].default


@dataclass
class ServedModel:
    name: str
    entity_name: str
    entity_version: str
    loaded: LoadedModel
    batcher: Batcher


@dataclass
class Config:
    """One applied endpoint configuration; replaced as a whole, never edited in place."""

    version: int
    spec: dict[str, Any]
    served: dict[str, ServedModel]
    routes: list[tuple[str, int]]
    shadows: list[tuple[str, int]]

    def pick(self, rng: random.Random) -> ServedModel:
        names, weights = zip(*self.routes)
        return self.served[rng.choices(names, weights=weights)[0]]


@dataclass
class Endpoint:
    name: str
    created: int = field(default_factory=lambda: int(time.time() * 1000))
    active: Config | None = None
    pending: dict[str, Any] | None = None
    config_update: str = "IN_PROGRESS"  # NOT_UPDATING | IN_PROGRESS | UPDATE_FAILED
    message: str = ""
    max_queued_requests: int = MAX_QUEUED_REQUESTS
    admission: Admission = field(init=False)  # outlives config swaps: the bound is the endpoint's

    def __post_init__(self) -> None:
        self.admission = Admission(self.name, self.max_queued_requests)

    def describe(self, capture_table: str | None) -> dict[str, Any]:
        """The endpoint in the shape of Databricks' ServingEndpointDetailed."""
        body: dict[str, Any] = {
            "name": self.name,
            "id": self.name,
            "creation_timestamp": self.created,
            "state": {"ready": "READY" if self.active else "NOT_READY", "config_update": self.config_update},
        }
        if self.active:
            body["config"] = {
                **self.active.spec,
                "config_version": self.active.version,
                "served_entities": [
                    {**entity, "state": {"deployment": "DEPLOYMENT_READY"}}
                    for entity in self.active.spec["served_entities"]
                ],
            }
        if self.pending is not None:
            state = {
                "deployment": "DEPLOYMENT_FAILED"
                if self.config_update == "UPDATE_FAILED"
                else "DEPLOYMENT_CREATING",
                "deployment_state_message": self.message,
            }
            body["pending_config"] = {
                **self.pending,
                "served_entities": [
                    {**entity, "state": state} for entity in self.pending.get("served_entities", [])
                ],
            }
        if capture_table:
            body["auto_capture_config"] = {"enabled": True, "table_name_prefix": capture_table}
        if self.message:
            body["state_message"] = self.message
        return body


# Databricks: "An endpoint name can consist of alphanumeric characters, dashes, and underscores"
# (at most 63 of them); served entity names follow the same rule.
NAME = re.compile(r"^[A-Za-z0-9_-]{1,63}$")
VERSION = re.compile(r"^[1-9][0-9]{0,17}$")


def _invalid(message: str) -> BadRequest:
    return BadRequest(message, error_code="INVALID_PARAMETER_VALUE")


def check_name(name: Any, field: str = "name") -> str:
    """``name`` if it is a valid endpoint (or served entity) name, else a 400 saying the rule."""
    if not isinstance(name, str) or not NAME.match(name):
        shown = repr(name) if not isinstance(name, str) or len(name) < 80 else f"{name[:80]!r}..."
        raise _invalid(f"{field} {shown} is not a valid name: use 1 to 63 letters, digits, '-' or '_'")
    return name


def _entity(entity: Any, index: int) -> dict[str, Any]:
    """A served entity with a valid entity_name, entity_version (a positive integer, as a string)
    and name (given, or ``<model>-<version>``)."""
    field = f"served_entities[{index}]"
    if not isinstance(entity, dict):
        raise _invalid(f"{field} must be an object with entity_name and entity_version")
    entity = {**entity}
    ename = entity.pop("model_name", None) if "entity_name" not in entity else entity["entity_name"]
    eversion = (
        entity.pop("model_version", None) if "entity_version" not in entity else entity["entity_version"]
    )
    if not isinstance(ename, str) or not ename.strip() or len(ename) > 255 or not ename.isprintable():
        raise _invalid(f"{field}.entity_name is required: the registered model's name (got {ename!r:.80})")
    if isinstance(eversion, int) and not isinstance(eversion, bool):
        eversion = str(eversion)
    if not isinstance(eversion, str) or not VERSION.match(eversion):
        raise _invalid(
            f"{field}.entity_version is required: a model version, a positive integer such as "
            f'"1" (got {eversion!r:.80})'
        )
    entity["entity_name"], entity["entity_version"] = ename, eversion
    default = f"{ename.split('.')[-1]}-{eversion}"
    if entity.get("name") is None and not NAME.match(default):
        raise _invalid(f"{field}.name is required: {default!r:.80} (the default) is not a valid name")
    entity["name"] = check_name(entity.get("name") or default, f"{field}.name")
    return entity


def _percent(route: Any, field: str, key: str, default: int | None = None) -> int:
    value = route.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise _invalid(f"{field}.{key} must be a whole number from 0 to 100 (got {value!r:.80})")
    return value


def _routes(spec: dict[str, Any], names: list[str]) -> list[dict[str, Any]]:
    traffic = spec.get("traffic_config")
    if traffic is not None and not isinstance(traffic, dict):
        raise _invalid('traffic_config must be an object: {"routes": [...]}')
    routes = (traffic or {}).get("routes")
    if routes is None:
        if len(names) > 1:
            raise _invalid("traffic_config.routes is required when more than one entity is served")
        return [{"served_model_name": names[0], "traffic_percentage": 100}]
    if not isinstance(routes, list) or not routes:
        raise _invalid("traffic_config.routes must be a list of {served_model_name, traffic_percentage}")
    normalized = []
    for i, route in enumerate(routes):
        field = f"traffic_config.routes[{i}]"
        if not isinstance(route, dict):
            raise _invalid(f"{field} must be an object: {{served_model_name, traffic_percentage}}")
        target = route.get("served_model_name", route.get("served_entity_name"))
        if target not in names:
            raise _invalid(f"{field} routes to unknown served model {target!r:.80}; served: {names}")
        normalized.append(
            {
                **route,
                "served_model_name": target,
                "traffic_percentage": _percent(route, field, "traffic_percentage"),
            }
        )
    if sum(r["traffic_percentage"] for r in normalized) != 100:
        raise _invalid(
            f"traffic percentages must add up to 100: {[r['traffic_percentage'] for r in normalized]}"
        )
    return normalized


def _shadows(spec: dict[str, Any], names: list[str]) -> list[dict[str, Any]]:
    shadows = spec.get("shadow_routes") or []
    if not isinstance(shadows, list):
        raise _invalid("shadow_routes must be a list of {served_model_name, mirror_percentage}")
    normalized = []
    for i, shadow in enumerate(shadows):
        field = f"shadow_routes[{i}]"
        if not isinstance(shadow, dict) or shadow.get("served_model_name") not in names:
            raise _invalid(f"{field} must name a served model ({names}): {shadow!r:.80}")
        normalized.append({**shadow, "mirror_percentage": _percent(shadow, field, "mirror_percentage", 100)})
    return normalized


def validate_spec(spec: Any) -> dict[str, Any]:
    """Normalize a Databricks endpoint config (served entities + traffic routes + our shadow
    routes); every mistake is a ``BadRequest`` naming the field."""
    if not isinstance(spec, dict):
        raise _invalid('config must be an object: {"served_entities": [...], "traffic_config": {...}}')
    entities = spec.get("served_entities") or spec.get("served_models")
    if not isinstance(entities, list) or not entities:
        raise _invalid("config needs served_entities: [{entity_name, entity_version, ...}]")
    normalized = [_entity(entity, i) for i, entity in enumerate(entities)]
    names = [e["name"] for e in normalized]
    if len(set(names)) != len(names):
        raise _invalid(f"served entity names must be unique: {names}")
    return {
        "served_entities": normalized,
        "traffic_config": {"routes": _routes(spec, names)},
        "shadow_routes": _shadows(spec, names),
    }
