"""Automation: what starts runs without a person. See docs/automation.md."""

from .definitions import automation_definitions, cost_definitions, failure_definitions
from .housekeeping import housekeeping_schedule

__all__ = ["automation_definitions", "cost_definitions", "failure_definitions", "housekeeping_schedule"]
