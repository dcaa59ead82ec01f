"""Governance: the audit log of lifecycle actions and model cards."""
