"""Model cards: what a registered version is, what it learned from, how good it is, and its limits."""

from __future__ import annotations

from typing import Any


def _bullets(items: list[str]) -> str:
    return "\n".join(f"- {item}" for item in items) if items else "- _none recorded_"


def render_model_card(
    model_name: str,
    version: str,
    governance: Any,
    training: dict[str, Any],
    features: list[str],
    metrics: dict[str, float],
    validation: list[Any],
    lineage: dict[str, str],
) -> str:
    """The card as Markdown. ``governance`` is the config section (owner, use case, limits, ethics);
    ``validation`` is a list of ThresholdResult; ``training`` and ``lineage`` map names to facts."""
    passed = all(r.passed for r in validation)
    rows = "\n".join(f"| {name} | {value:.4f} |" for name, value in metrics.items())
    checks = "\n".join(
        f"| {r.metric} | {'n/a' if r.observed is None else f'{r.observed:.4f}'} | "
        f"{'' if r.min is None else r.min} | {'' if r.max is None else r.max} | "
        f"{'pass' if r.passed else 'FAIL'} |"
        for r in validation
    )
    return f"""# Model card: {model_name} version {version}

## Overview
- **Owner:** {governance.owner}
- **Use case:** {governance.use_case}
- **Validation:** {"passed" if passed else "FAILED"}

## Limitations
{_bullets(governance.limitations)}

## Ethical considerations
{_bullets(governance.ethical_considerations)}

## Training data
{_bullets([f"{k}: {v}" for k, v in training.items()])}

## Features ({len(features)})
{", ".join(f"`{f}`" for f in features)}

## Holdout metrics
| metric | value |
|---|---|
{rows}

## Validation
| metric | observed | min | max | outcome |
|---|---|---|---|---|
{checks}

## Approvals
- _none yet_

## Lineage
{_bullets([f"{k}: {v}" for k, v in lineage.items()])}
"""


def with_approval(card: str, approver: str, when: str, comment: str) -> str:
    """The card with one more approval listed under "## Approvals"."""
    line = f"- approved by **{approver}** at {when}: {comment}"
    head, marker, tail = card.partition("## Approvals\n")
    if not marker:
        return card.rstrip() + f"\n\n## Approvals\n{line}\n"
    tail = tail.replace("- _none yet_\n", "", 1)
    return f"{head}{marker}{line}\n{tail}"
