"""The code location: every use case's Definitions for the target chosen by MLOPS_TARGET (default
``local``), built by the functions the ``mlops_dagster.UseCase`` component builds with."""

from __future__ import annotations

from .components import build_definitions, project_definitions, use_case_definitions
from .runtime.quiet import quiet_libraries
from .settings import load_project

__all__ = ["build_definitions", "defs", "project_definitions", "use_case_definitions"]

quiet_libraries()
defs = build_definitions(load_project())
