"""How the configuration is loaded: YAML layers read and merged, ``${VAR}`` and ``{name}``
expanded, and each use case's settings validated into a ``Project``.

One setting picks the target: ``MLOPS_TARGET`` (``local`` by default, or ``dev`` / ``staging`` /
``prod``). Its file ``conf/<target>.yaml`` is laid over ``conf/base.yaml``; ``MLOPS_CONFIG``
may name one more YAML file laid over both (your own data, your own model). Values may use
``${VAR}`` or ``${VAR:-default}`` to read the environment.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, model_validator

from .base import ConfigError, SettingsModel
from .constants import CONF_DIR, SETTINGS_JSON_ENV, TARGETS, USE_CASE_TAG
from .schema import Settings

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_NAME_REF = re.compile(r"\{(name|catalog|schema)\}")


def _expand_names(value: Any, names: dict[str, str]) -> Any:
    """``{name}``, ``{catalog}`` and ``{schema}`` in config strings and keys, from the config itself."""
    if isinstance(value, str):
        return _NAME_REF.sub(lambda m: names[m.group(1)], value)
    if isinstance(value, dict):
        return {_expand_names(k, names): _expand_names(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_names(v, names) for v in value]
    return value


def _expand_env(value: Any) -> Any:
    if isinstance(value, str):
        return _ENV_REF.sub(lambda m: os.environ.get(m.group(1)) or (m.group(2) or ""), value)
    if isinstance(value, dict):
        return {k: _expand_env(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v) for v in value]
    return value


# Mappings that describe one thing as a whole: an override replaces them instead of merging into
# them (a new model class must not inherit the old one's params, a new dataset the old columns).
_REPLACED_WHOLE = {"params", "columns", "derived", "thresholds"}


def deep_merge(base: dict, over: dict) -> dict:
    """``over`` laid over ``base`` (how configuration layers combine)."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key not in _REPLACED_WHOLE:
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_yaml(path: Path) -> dict:
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"configuration file {path} is not valid YAML: {exc}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"configuration file {path} must hold a mapping at the top level")
    return loaded


# Settings one project shares: a use case may not set these (one workspace, one store, one gateway).
PROJECT_WIDE = {
    "target": None,
    "root": None,
    "catalog": None,
    "schema": None,
    "spark": None,
    "databricks": None,
    "mlflow": ("tracking_uri", "registry_uri"),
    "serving": ("host", "port", "model_processes"),
    "feature_store": ("online_store",),
    "cost": None,
}


class Project(SettingsModel):
    """Every use case of the code location, each one's settings complete (shared parts included)."""

    use_cases: list[Settings] = Field(min_length=1)
    """The use cases in the order the configuration names them; the first is the default."""

    @model_validator(mode="after")
    def _one_project(self) -> Project:
        names = [u.name for u in self.use_cases]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"use case names must be unique: {duplicated}")
        return self

    @property
    def default(self) -> Settings:
        """The first use case: the one commands act on when not told which."""
        return self.use_cases[0]

    @property
    def names(self) -> list[str]:
        return [u.name for u in self.use_cases]

    def use_case(self, name: str | None = None) -> Settings:
        if name is None:
            return self.default
        for use_case in self.use_cases:
            if use_case.name == name:
                return use_case
        raise ConfigError(f"there is no use case {name!r}; this project has {', '.join(self.names)}")

    def select(self, name: str | None = None) -> list[Settings]:
        """One use case, or every one when ``name`` is None."""
        return self.use_cases if name is None else [self.use_case(name)]

    def owner_of_step(self, step_key: str, run_tags: dict[str, str]) -> str:
        """The use case a step works for: its run's tag, else (an ad-hoc materialization) the use
        case whose name prefixes the step key (``sales__sales_model``, ``sales_features_checks``)."""
        if run_tags.get(USE_CASE_TAG):
            return run_tags[USE_CASE_TAG]
        owners = [n for n in self.names if step_key.startswith(f"{n}_")]
        return max(owners, key=len, default="")

    def by_endpoint(self, endpoint: str) -> Settings | None:
        """The use case serving ``endpoint`` (None: no use case names it)."""
        return next((u for u in self.use_cases if u.serving.endpoint == endpoint), None)


def load_settings(
    target: str | None = None, extra_file: str | Path | None = None, use_case: str | None = None
) -> Settings:
    """One use case's settings (default: the first) for ``target``; see ``load_project``."""
    return load_project(target, extra_file).use_case(use_case)


def _project_wide_keys_in(section: dict) -> list[str]:
    """The project-wide settings ``section`` sets, as dotted names (``serving.port``)."""
    shared, _ = _split_project_wide(section)
    return [
        key if PROJECT_WIDE[key] is None else f"{key}.{sub}"
        for key, value in shared.items()
        for sub in ([None] if PROJECT_WIDE[key] is None else value)
    ]


def _check_use_case_sections(path: Path, layer: dict, shared_in: str = "at the top level") -> None:
    sections = layer.get("use_cases")
    if sections is None:
        return
    if "name" in layer:
        raise ConfigError(
            f"{path}: `name` belongs to a use case; with `use_cases`, each entry's key is its name"
        )
    if not isinstance(sections, dict) or not all(isinstance(v, dict | None) for v in sections.values()):
        raise ConfigError(f"{path}: `use_cases` must map each use case's name to its settings")
    for use_case, section in sections.items():
        shared = _project_wide_keys_in(section or {})
        if shared:
            raise ConfigError(
                f"{path}: use case {use_case!r} sets {', '.join(shared)}, which the whole project "
                f"shares: set it {shared_in}"
            )


def _split_project_wide(own: dict) -> tuple[dict, dict]:
    """A file's settings as (what the project shares, what belongs to its use case)."""
    shared, use_case = {}, {}
    for key, value in own.items():
        sub = PROJECT_WIDE.get(key, ())
        if key in PROJECT_WIDE and sub is None:
            shared[key] = value
        elif sub and isinstance(value, dict):
            if any(k in value for k in sub):
                shared[key] = {k: v for k, v in value.items() if k in sub}
            if any(k not in sub for k in value):
                use_case[key] = {k: v for k, v in value.items() if k not in sub}
        else:
            use_case[key] = value
    return shared, use_case


def _single_use_case(layers: list[dict]) -> list[dict]:
    """Layers for a last file in today's single-use-case format (no ``use_cases``): it describes the
    project's only use case. With a dataset of its own (another ``dataset.name``) it replaces the
    shipped use cases whole, named by its ``name`` or else ``dataset.name``; otherwise it adjusts
    (and may rename) the first one, the demo, as such a file always did. What the project shares
    (``catalog``, ``serving.port``, ...) stays shared."""
    own, shipped = layers[-1], layers[:-1]
    sections: dict = {}
    for layer in shipped:
        sections = deep_merge(sections, layer.get("use_cases") or {})
    first = next(iter(sections))
    dataset = (own.get("dataset") or {}).get("name")
    replaced = dataset is not None and dataset != ((sections[first] or {}).get("dataset") or {}).get("name")
    name = str(own["name"]) if "name" in own else (str(dataset) if replaced else first)
    shipped = [
        {
            **{k: v for k, v in layer.items() if k != "use_cases"},
            # The demo's section, under the name it runs as; none when the file brings its own dataset.
            "use_cases": {}
            if replaced or first not in (layer.get("use_cases") or {})
            else {name: layer["use_cases"][first]},
        }
        for layer in shipped
    ]
    shared, use_case = _split_project_wide({k: v for k, v in own.items() if k != "name"})
    return [*shipped, {**shared, "use_cases": {name: use_case}}]


def _target(target: str | None) -> str:
    target = target or os.environ.get("MLOPS_TARGET") or "local"
    if target not in TARGETS:
        raise ConfigError(f"MLOPS_TARGET={target!r} is not a target; choose one of {', '.join(TARGETS)}")
    return target


def load_project(target: str | None = None, extra_file: str | Path | None = None) -> Project:
    """Every use case of the project for ``target`` (default: ``MLOPS_TARGET`` or ``local``).

    ``conf/base.yaml``, ``conf/<target>.yaml`` and the ``MLOPS_CONFIG`` file are layered in that
    order; in each, the top level holds defaults every use case shares and ``use_cases.<name>`` one
    use case's own settings, which win over the defaults. A ``MLOPS_CONFIG`` file without
    ``use_cases`` is in today's single-use-case format: it describes the only use case (see
    ``_single_use_case``).

    A remote step (on a Databricks cluster) gets the launching process's project, resolved, in
    ``MLOPS_SETTINGS_JSON``: it runs with exactly the configuration its run was launched with."""
    shipped = os.environ.get(SETTINGS_JSON_ENV)
    if shipped and target is None and extra_file is None:
        return Project.model_validate_json(shipped)
    target = _target(target)
    extra_file = extra_file or os.environ.get("MLOPS_CONFIG") or None
    files = [CONF_DIR / "base.yaml", CONF_DIR / f"{target}.yaml"]
    if extra_file:
        files.append(Path(extra_file))
    layers = [_expand_env(_read_yaml(path)) for path in files]
    for path, layer in zip(files, layers):
        _check_use_case_sections(path, layer)
    if extra_file and "use_cases" not in layers[-1]:
        layers = _single_use_case(layers)
    return _project(target, " + ".join(str(f) for f in files), layers)


def load_use_case(
    name: str,
    section: dict,
    declared_in: str | Path,
    project_file: str | Path | None = None,
    target: str | None = None,
) -> Settings:
    """One use case declared on its own (an ``mlops_dagster.UseCase`` component's attributes, from
    the file ``declared_in``): ``section`` holds the keys of one ``use_cases.<name>`` entry, laid over
    the shared defaults of ``conf/base.yaml``, ``conf/<target>.yaml`` and the project settings file
    ``project_file`` (the shipped use cases are not part of it). Checked as ``load_project`` checks
    a use case, with the same errors."""
    target = _target(target)
    files = [
        CONF_DIR / "base.yaml",
        CONF_DIR / f"{target}.yaml",
        *([Path(project_file)] if project_file else []),
    ]
    layers = [_expand_env(_read_yaml(path)) for path in files]
    if project_file and "use_cases" in layers[-1]:
        raise ConfigError(
            f"{project_file}: the project settings file holds what every use case shares; declare each "
            "use case as an mlops_dagster.UseCase component (a defs.yaml), not under `use_cases`"
        )
    own = {"use_cases": {name: _expand_env(section)}}
    _check_use_case_sections(
        Path(declared_in),
        own,
        "in the project settings file (mlops.yaml at the project's root, or MLOPS_CONFIG)",
    )
    shared = [{k: v for k, v in layer.items() if k != "use_cases"} for layer in layers]
    return _project(target, " + ".join(str(f) for f in [*files, declared_in]), [*shared, own]).default


def _project(target: str, sources: str, layers: list[dict]) -> Project:
    """The project ``layers`` (each a file's settings, upper over lower) describe, each use case checked."""
    top: dict = {}
    for layer in layers:
        top = deep_merge(top, {k: v for k, v in layer.items() if k != "use_cases"})
    missing = [k for k in ("catalog", "schema") if not isinstance(top.get(k), str)]
    if missing:
        raise ConfigError(
            f"invalid configuration for target {target!r} ({sources}): {', '.join(missing)} "
            "must be set, as text"
        )
    use_case_names = list(dict.fromkeys(n for layer in layers for n in (layer.get("use_cases") or {})))
    if not use_case_names:
        raise ConfigError(
            f"invalid configuration for target {target!r} ({sources}): no use case; add one under `use_cases`"
        )
    use_cases = []
    for name in use_case_names:
        # The shared top level of every layer, then this use case's section of every layer: the
        # use case's own settings win over the shared defaults, and within each an upper layer (a
        # target, your file) wins over a lower one. Each part gets the final names before it is
        # merged, so a key written `{name}_features` in one and `sales_features` in another (use
        # case sales) is one key.
        names = {"name": str(name), "catalog": top["catalog"], "schema": top["schema"]}
        parts = [
            *({k: v for k, v in layer.items() if k != "use_cases"} for layer in layers),
            *((layer.get("use_cases") or {}).get(name) or {} for layer in layers),
        ]
        raw: dict = {}
        for part in parts:
            raw = deep_merge(raw, _expand_names(part, names))
        try:
            use_cases.append(Settings.model_validate({**raw, "name": name}))
        except ValidationError as exc:
            raise ConfigError(
                f"invalid configuration for target {target!r}, use case {name!r} ({sources}):\n{exc}"
            ) from None
    return Project(use_cases=use_cases)
