"""The gateway's API: every operation once, with the token scope it needs and its request body.
The server builds its routes from ``OPERATIONS`` and serves ``document()`` as ``/openapi.json``,
so the description cannot drift from what is served (the fuzz tests run from it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_ERROR = {
    "type": "object",
    "required": ["error_code", "message"],
    "properties": {"error_code": {"type": "string"}, "message": {"type": "string"}},
}
_ROWS = {"type": "array", "items": {"oneOf": [{"type": "object"}, {"type": "array"}]}}
_FORMATS = {
    "dataframe_split": {
        "type": "object",
        "required": ["columns", "data"],
        "properties": {
            "columns": {"type": "array", "items": {"type": "string"}},
            "data": {"type": "array", "items": {"type": "array"}},
        },
    },
    "dataframe_records": {"type": "array", "items": {"type": "object"}},
    "instances": {"oneOf": [_ROWS, {"type": "object"}]},
    "inputs": {"oneOf": [_ROWS, {"type": "object"}]},
}
# Exactly one of the formats; other keys (e.g. MLflow's "params") are ignored.
QUERY_BODY = {
    "oneOf": [
        {
            "type": "object",
            "required": [name],
            "properties": {name: schema},
            "not": {"anyOf": [{"required": [other]} for other in _FORMATS if other != name]},
        }
        for name, schema in _FORMATS.items()
    ]
}
_PERCENT = {"type": "integer", "minimum": 0, "maximum": 100}
_NAME = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,63}$"}
CONFIG = {
    "type": "object",
    "required": ["served_entities"],
    "properties": {
        "served_entities": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["entity_name", "entity_version"],
                "properties": {
                    "name": _NAME,
                    "entity_name": {"type": "string", "minLength": 1, "maxLength": 255},
                    "entity_version": {"type": "string", "pattern": "^[1-9][0-9]{0,17}$"},
                    "workload_size": {"type": "string"},
                    "scale_to_zero_enabled": {"type": "boolean"},
                },
            },
        },
        "traffic_config": {
            "type": "object",
            "properties": {
                "routes": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["served_model_name", "traffic_percentage"],
                        "properties": {"served_model_name": _NAME, "traffic_percentage": _PERCENT},
                    },
                }
            },
        },
        "shadow_routes": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["served_model_name"],
                "properties": {"served_model_name": _NAME, "mirror_percentage": _PERCENT},
            },
        },
    },
}
CREATE_BODY = {
    "type": "object",
    "required": ["name", "config"],
    "properties": {"name": _NAME, "config": CONFIG},
}


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    operation_id: str  # the handler's name in server.build_app
    scope: str | None  # the token scope it needs (None: open)
    summary: str
    body: dict[str, Any] | None = None
    errors: tuple[int, ...] = (400, 401, 403, 404)


OPERATIONS = [
    Operation("GET", "/ping", "ping", None, "Liveness probe (no token)", errors=()),
    Operation("GET", "/health", "health", None, "Liveness probe with endpoint states (no token)", errors=()),
    Operation("GET", "/openapi.json", "openapi", None, "This description (no token)", errors=()),
    Operation(
        "POST",
        "/invocations",
        "mlflow_invocations",
        "query",
        "MLflow's scoring protocol: score on the gateway's only endpoint",
        QUERY_BODY,
        (400, 401, 403, 404, 413, 415, 429, 503),
    ),
    Operation(
        "POST",
        "/serving-endpoints/{name}/invocations",
        "invocations",
        "query",
        "Score on endpoint {name} (Databricks' query API)",
        QUERY_BODY,
        (400, 401, 403, 404, 413, 415, 429, 503),
    ),
    Operation(
        "GET", "/api/2.0/serving-endpoints", "list_endpoints", "query", "List endpoints", errors=(401, 403)
    ),
    Operation(
        "POST",
        "/api/2.0/serving-endpoints",
        "create_endpoint",
        "manage",
        "Create an endpoint",
        CREATE_BODY,
        (400, 401, 403, 409, 413, 415),
    ),
    Operation("GET", "/api/2.0/serving-endpoints/{name}", "get_endpoint", "query", "Get an endpoint"),
    Operation(
        "DELETE", "/api/2.0/serving-endpoints/{name}", "delete_endpoint", "manage", "Delete an endpoint"
    ),
    Operation(
        "PUT",
        "/api/2.0/serving-endpoints/{name}/config",
        "update_config",
        "manage",
        "Update an endpoint's config (applied in the background)",
        CONFIG,
        (400, 401, 403, 404, 409, 413, 415),
    ),
]


def _operation(op: Operation) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "responses": {"200": {"description": "OK"}},
    }
    if "{name}" in op.path:
        spec["parameters"] = [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}]
    if op.body is not None:
        spec["requestBody"] = {"required": True, "content": {"application/json": {"schema": op.body}}}
    for status in op.errors:
        spec["responses"][str(status)] = {
            "description": "Error",
            "content": {"application/json": {"schema": _ERROR}},
        }
    spec["security"] = [{"bearer": []}] if op.scope else []
    return spec


def document(version: str = "1") -> dict[str, Any]:
    """The OpenAPI 3 description of the gateway's API."""
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "mlops_dagster serving gateway",
            "version": version,
            "description": "The Databricks serving REST API and MLflow's scoring protocol. Tokens: "
            "`mlops token create --scope query|manage`; manage implies query.",
        },
        "paths": paths,
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
