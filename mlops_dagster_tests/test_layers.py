"""The layer rule of docs/architecture.md: a module imports only from its own package or from the
packages of the layers below its own. An import that climbs back up the layers fails here, naming
the module, the line and the rule it breaks."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import mlops_dagster

PACKAGE = Path(mlops_dagster.__file__).parent

# Bottom to top. Lazy imports inside functions count as much as those at the top of a module.
LAYERS: list[set[str]] = [
    {"settings", "version"},  # the configuration schema, names and loading; the version: nothing of ours
    {"ml", "data", "runtime"},  # pure ML logic, demo data generators, run machinery
    {"resources", "serving", "monitoring", "governance", "feature_store"},  # services and stores
    {"assets"},  # assets and asset checks: wiring of the layers below
    {"jobs"},  # jobs and the ops of governance and feature-registry jobs
    {"automation"},  # sensors and schedules
    {"components"},  # use cases as Dagster Components, and the Definitions they and the code location build
    {"definitions"},  # the code location
    {"cli"},  # the `mlops` command
]
# Packages of one layer are independent, except these: the serving gateway runs on the stores that
# resources/ opens, and the serving resource starts the gateway.
SAME_LAYER_ALLOWED = {("resources", "serving"), ("serving", "resources")}

LAYER_OF = {package: index for index, layer in enumerate(LAYERS) for package in layer}


def _module_name(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    return ".".join(parts[:-1] if is_package else parts), is_package


def _imported(module: str, is_package: bool, node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if not node.level:
        base = node.module or ""
    else:
        parts = module.split(".") if is_package else module.split(".")[:-1]
        parts = parts[: len(parts) - (node.level - 1)]
        base = ".".join(parts + ([node.module] if node.module else []))
    if base == "mlops_dagster":  # from mlops_dagster import x: x is the package imported
        return [f"{base}.{alias.name}" for alias in node.names]
    return [base]


def _top(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "mlops_dagster" and len(parts) > 1 else None


def layer_violations() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module, is_package = _module_name(path)
        own = _top(module)
        if own is None:  # mlops_dagster/__init__.py
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            for name in _imported(module, is_package, node):
                other = _top(name)
                if other is None or other == own:
                    continue
                if own not in LAYER_OF or other not in LAYER_OF:
                    found.append(
                        f"{module}:{node.lineno}: mlops_dagster.{own if own not in LAYER_OF else other} "
                        "has no layer: add it to LAYERS here and to docs/architecture.md"
                    )
                    continue
                if LAYER_OF[other] < LAYER_OF[own] or (own, other) in SAME_LAYER_ALLOWED:
                    continue
                found.append(
                    f"{module}:{node.lineno} imports {name}: {own} (layer {LAYER_OF[own]}) may import "
                    f"only from layers below it, and {other} is layer {LAYER_OF[other]}"
                )
    return found


def test_imports_flow_down_the_layers():
    assert layer_violations() == []


def test_every_package_has_a_layer():
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert (packages | modules) - set(LAYER_OF) == set()


def test_the_rule_catches_an_import_up_the_layers(tmp_path, monkeypatch):
    """The check can fail: a pure ML module that imports an asset module is reported."""
    fake = tmp_path / "mlops_dagster"
    (fake / "ml").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "ml" / "__init__.py").write_text("")
    (fake / "ml" / "bad.py").write_text("def f():\n    from ..assets.training import trained_model\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert layer_violations() == [
        "mlops_dagster.ml.bad:2 imports mlops_dagster.assets.training: ml (layer 1) may import only from "
        "layers below it, and assets is layer 3"
    ]
