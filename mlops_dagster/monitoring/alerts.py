"""One alerting path for drift, decay, bias, failed runs and budgets: a JSON POST to the configured webhook and a
row in the project's `alerts` Delta table. The row is written whatever the webhook does, so an
alert is never lost to a webhook that is down; the row says what the webhook answered.

The payload's `text` is what Slack incoming webhooks and Teams workflow webhooks show; the other
fields are for receivers that parse JSON. The webhook's URL is a secret (Slack's carry a token):
it is never logged, stored or put in a message.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

ALERTS_TABLE = "alerts"


def post_json(url: str, payload: dict, timeout: float = 10.0) -> int:
    import urllib.request  # only when an alert is posted: keeps the code location's load light

    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (configured URL)
        return response.status


def payload(kind: str, use_case: str, summary: str, details: dict[str, Any]) -> dict:
    return {
        "text": f"[mlops {use_case}] {kind}: {summary}",
        "kind": kind,
        "use_case": use_case,
        "summary": summary,
        "details": details,
    }


def deliver(webhook: str | None, body: dict) -> str:
    """POST ``body`` to ``webhook``; what happened, in words (never raises, never names the URL)."""
    if not webhook:
        return "not configured"
    try:
        return f"HTTP {post_json(webhook, body)}"
    except Exception as exc:  # a broken webhook must not lose the alert
        return f"failed: {type(exc).__name__}: {getattr(exc, 'reason', None) or getattr(exc, 'code', '') or 'no answer'}"


def alert_row(body: dict, webhook_status: str, run_id: str) -> dict:
    import pandas as pd

    return {
        "alerted_at": pd.Timestamp(datetime.now(UTC)),
        "kind": body["kind"],
        "use_case": body["use_case"],
        "summary": body["summary"],
        "details": json.dumps(body["details"], default=str, sort_keys=True),
        "webhook_status": webhook_status,
        "dagster_run_id": run_id,
    }


def record_alert(lakehouse, table: str, row: dict) -> None:
    import pandas as pd

    lakehouse.write(
        table,
        pd.DataFrame([row]),
        "append",
        description="Every alert (drift, decay, failed run): what, where, and what the webhook answered.",
    )


def raise_alert(
    lakehouse,
    settings,
    kind: str,
    summary: str,
    details: dict[str, Any],
    run_id: str,
    about: str | None = None,
) -> str | None:
    """Send one alert of ``kind`` for ``settings``' use case (or ``about``, for a project-wide
    one), if the config alerts on that kind: POSTed to `automation.alert_webhook` and appended to
    the `alerts` table. Returns the webhook's status, or None when the kind is not alerted on."""
    if kind not in settings.automation.alert_on:
        return None
    body = payload(kind, about or settings.name, summary, details)
    status = deliver(settings.automation.alert_webhook, body)
    record_alert(lakehouse, settings.table(ALERTS_TABLE), alert_row(body, status, run_id))
    return status
