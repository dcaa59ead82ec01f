"""The configuration reference, generated from the schema so it cannot drift from it.

``python -m mlops_dagster.settings.reference --write`` writes ``docs/reference/configuration.md``;
``--check`` fails, saying that command, when the committed page differs from what the schema
generates (``make docs`` runs it); without a flag it prints the page. Every key is listed as a dotted path with its type,
default, allowed values and the description written under the field in the schema.
"""

from __future__ import annotations

import json
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from .loading import PROJECT_WIDE
from .schema import Settings
from .schema_data import ColumnRule, FeatureSpec, FeatureTableSettings
from .schema_model import Bound
from .schema_operations import RoleRights

COMMAND = "python -m mlops_dagster.settings.reference --write"
PAGE = Path(__file__).parents[2] / "docs" / "reference" / "configuration.md"
# What the key of a map of sections stands for (`dataset.columns.<column>.type`).
_PLACEHOLDERS = {
    ColumnRule: "column",
    FeatureSpec: "feature",
    FeatureTableSettings: "table",
    Bound: "metric",
    RoleRights: "role",
}
_TYPE_NAMES = {str: "text", int: "integer", float: "number", bool: "boolean", Path: "path", Any: "any"}
_BOUNDS = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))

INTRODUCTION = f"""# Configuration reference

Generated from the schema (`mlops_dagster/settings/`) by `{COMMAND}`: do not edit it by hand.

The configuration is YAML: `conf/base.yaml`, then `conf/<target>.yaml` (`MLOPS_TARGET`: local, dev,
staging or prod), then the file named by `MLOPS_CONFIG`, each laid over the ones before key by key
(except `params`, `columns`, `derived` and `thresholds`, which an upper layer replaces whole). The
top level of a file holds the settings every use case shares; `use_cases.<name>` holds one use
case's own, which win over the shared ones.

- Scope **project**: one value for the whole project, set at the top level only (a use case
  section that sets it is refused).
- Scope **use case**: set at the top level as every use case's default, or under
  `use_cases.<name>` for one use case.

A key is a dotted path: `monitoring.ground_truth.max_delay_days` is `max_delay_days` under
`ground_truth` under `monitoring`. `<column>`, `<table>`, `<feature>`, `<metric>` and `<role>` stand
for names you choose; `[]` for each entry of a list. Values may read the environment
(`${{VAR}}`, `${{VAR:-default}}`) and text may say `{{name}}`, `{{catalog}}` and `{{schema}}`. An unknown
key is an error that names it. Defaults are the schema's; the shipped `conf/*.yaml` set many keys
explicitly.
"""


@dataclass(frozen=True)
class Row:
    """One key of the configuration."""

    key: str
    type: str
    default: str
    allowed: str
    scope: str
    description: str


def _without_none(annotation: Any) -> Any:
    """``X | None`` as ``X`` (a union of several sections stays a union)."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else Union[tuple(args)]  # noqa: UP007 (made from a runtime tuple)
    return annotation


def _is_section(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _type_text(annotation: Any) -> str:
    annotation = _without_none(annotation)
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return _TYPE_NAMES[type(args[0])]
    if origin is list:
        return f"list of {_type_text(args[0])}"
    if origin is dict:
        return f"map of text to {_type_text(args[1])}"
    if _is_section(annotation) or (origin in (Union, types.UnionType) and all(_is_section(a) for a in args)):
        return "mapping"
    if origin in (Union, types.UnionType):
        return " or ".join(_type_text(a) for a in args)
    return _TYPE_NAMES[annotation]


def _literals(annotation: Any) -> list[Any]:
    """The values every Literal in ``annotation`` allows (of a list's items, of a map's values)."""
    if get_origin(annotation) is Literal:
        return list(get_args(annotation))
    return [v for arg in get_args(annotation) for v in _literals(arg)]


def _allowed(field: FieldInfo) -> str:
    parts = [", ".join(f"`{v}`" for v in _literals(field.annotation))]
    for constraint in field.metadata:
        parts += [
            f"{sign} {getattr(constraint, name)}" for name, sign in _BOUNDS if hasattr(constraint, name)
        ]
        if getattr(constraint, "min_length", None) is not None:
            parts.append(f"length >= {constraint.min_length}")
        if getattr(constraint, "max_length", None) is not None:
            parts.append(f"length <= {constraint.max_length}")
        if getattr(constraint, "pattern", None):
            parts.append(f"pattern `{constraint.pattern}`")
    return ", ".join(p for p in parts if p)


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.default_factory() if field.default is PydanticUndefined else field.default
    if value is None:
        return "unset"
    if isinstance(value, BaseModel):
        return ""
    return f"`{json.dumps(value)}`"


def _scope(key: str) -> str:
    top, _, rest = key.partition(".")
    shared = PROJECT_WIDE.get(top, ())
    return "project" if shared is None or rest.split(".")[0] in (shared or ()) else "use case"


def _described(field: FieldInfo) -> str:
    return " ".join((field.description or "").split())


def _row(key: str, field: FieldInfo, kind: str = "") -> Row:
    return Row(
        key,
        _type_text(field.annotation),
        _default(field),
        _allowed(field),
        _scope(key),
        f"{kind}{_described(field)}",
    )


def _kinds(key: str, discriminator: str, sections: tuple[type[BaseModel], ...]) -> list[Row]:
    """A discriminated union's keys: which kind it is, then each kind's own keys."""
    kinds = {get_args(s.model_fields[discriminator].annotation)[0]: s for s in sections}
    found = [
        Row(
            f"{key}.{discriminator}",
            "text",
            "required",
            ", ".join(f"`{k}`" for k in kinds),
            _scope(key),
            " ".join(f"`{k}`: {_described(s.model_fields[discriminator])}" for k, s in kinds.items()),
        )
    ]
    for kind, section in kinds.items():
        found += [
            r for r in rows(section, f"{key}.", f"(kind `{kind}`) ") if r.key != f"{key}.{discriminator}"
        ]
    return found


def rows(model: type[BaseModel] = Settings, prefix: str = "", kind: str = "") -> list[Row]:
    """Every key of ``model`` under ``prefix``, sections followed by their own keys."""
    found = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{field.alias or name}"
        found.append(_row(key, field, kind))
        annotation = _without_none(field.annotation)
        origin, args = get_origin(annotation), get_args(annotation)
        if _is_section(annotation):
            found += rows(annotation, f"{key}.", kind)
        elif origin is dict and _is_section(args[1]):
            found += rows(args[1], f"{key}.<{_PLACEHOLDERS.get(args[1], 'name')}>.", kind)
        elif origin is list and _is_section(args[0]):
            found += rows(args[0], f"{key}[].", kind)
        elif origin in (Union, types.UnionType) and all(_is_section(a) for a in args):
            found += _kinds(key, field.discriminator, args)
    return found


def _table(section: list[Row]) -> list[str]:
    lines = ["| Key | Type | Default | Allowed | Scope | Description |", "|---|---|---|---|---|---|"]
    for row in section:
        cells = [f"`{row.key}`", row.type, row.default, row.allowed, row.scope, row.description]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return lines


def markdown() -> str:
    """The reference page: the introduction, the top-level keys, then one table per section."""
    every = rows()
    lines = [
        INTRODUCTION,
        "## Top level",
        "",
        *_table([r for r in every if "." not in r.key and r.type != "mapping"]),
    ]
    for name, field in Settings.model_fields.items():
        key = field.alias or name
        if _is_section(_without_none(field.annotation)):
            lines += [
                "",
                f"## `{key}`",
                "",
                _described(field),
                "",
                *_table([r for r in every if r.key.startswith(f"{key}.")]),
            ]
    return "\n".join(lines) + "\n"


def stale() -> str | None:
    """Why the committed page is not what the schema generates now (None: it is)."""
    if not PAGE.exists():
        return f"{PAGE} is missing: run `{COMMAND}`"
    if PAGE.read_text() != markdown():
        return f"{PAGE} is out of date with the schema: run `{COMMAND}` and commit it"
    return None


def main(argv: list[str]) -> None:
    if argv == ["--write"]:
        PAGE.parent.mkdir(parents=True, exist_ok=True)
        PAGE.write_text(markdown())
    elif argv == ["--check"]:
        problem = stale()
        if problem:
            raise SystemExit(problem)
    elif not argv:
        sys.stdout.write(markdown())
    else:
        raise SystemExit(f"usage: {COMMAND.removesuffix(' --write')} [--write | --check]")


if __name__ == "__main__":
    main(sys.argv[1:])
