"""Settings sections as Dagster config, so a resource takes the section it uses as a typed field.

``as_config(DatabricksSettings)`` is a ``dagster.Config`` that *is* a ``DatabricksSettings``: the
same fields, defaults, bounds, descriptions and validators, its nested sections mirrored too. The
schema stays written once, in ``settings``; the resource's config shows in the UI with the
configuration reference's descriptions, and Dagster rebuilds the resource from it when a step
starts, on a cluster too (whose definitions come from the run's own project, MLOPS_SETTINGS_JSON).

Dagster config cannot express every field type (a ``Path``, a ``Literal`` that may be unset, a
list of ``Literal``), so not every section can be mirrored: ``Project`` cannot, and the local
gateway's backend takes it as a resource dependency instead.
"""

from __future__ import annotations

import copy
import types
from functools import cache
from typing import Any, Union, get_args, get_origin

from dagster import Config
from pydantic import BaseModel, create_model


def _mirrored(annotation: Any) -> Any:
    """``annotation`` with every settings section in it replaced by its Dagster config."""
    origin, args = get_origin(annotation), get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return as_config(annotation)
    if origin is list:
        return list[_mirrored(args[0])]
    if origin is dict:
        return dict[args[0], _mirrored(args[1])]
    if origin in (Union, types.UnionType):
        return Union[tuple(_mirrored(a) for a in args)]  # noqa: UP007 (a union made from a runtime tuple)
    return annotation


@cache
def as_config(section: type[BaseModel]) -> type[Config]:
    """``section`` as a ``dagster.Config`` subclass of it (one class per section)."""
    fields = {}
    for name, field in section.model_fields.items():
        mirrored = copy.copy(field)
        mirrored.annotation = _mirrored(field.annotation)
        fields[name] = (mirrored.annotation, mirrored)
    return create_model(
        section.__name__,
        __base__=(section, Config),
        __module__=section.__module__,
        __doc__=section.__doc__,
        # the fields carry their descriptions: reading them from source again finds no class body
        # to read and walks every frame of the import, each a scan of all loaded modules (seconds)
        __cls_kwargs__={"use_attribute_docstrings": False},
        **fields,
    )


def to_config(value: BaseModel) -> Config:
    """A loaded section as its Dagster config: the same values, in the mirrored class."""
    return as_config(type(value))(**value.model_dump(by_alias=True))
