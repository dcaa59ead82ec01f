"""Automation: what starts runs without a person. See README section "Automation"."""

from .definitions import automation_definitions, cost_definitions, failure_definitions

__all__ = ["automation_definitions", "cost_definitions", "failure_definitions"]
