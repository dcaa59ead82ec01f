"""Group `governance`: the compliance report over the audit log."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset

from ..governance.audit import AUDIT_TABLE
from ..resources.lakehouse import Lakehouse, TableNotFoundError
from ..resources.step_launcher import StepLauncherParam
from ..settings import Settings
from .metadata import markdown_table


class ComplianceWindow(Config):
    days: int = 30
    """Report on the last `days` days, up to now."""


def governance_assets(settings: Settings):
    audit_table = settings.table(AUDIT_TABLE)

    @asset(
        group_name="governance",
        kinds={"delta"},
        description=(
            f"Compliance report over `{audit_table}` for a date range (config `days`, default 30): actions by "
            "type and actor, every champion change, approval, refusal, rollback, restore and deployment, "
            "as a Markdown file under the reports folder and as metadata here."
        ),
    )
    def compliance_report(
        context: AssetExecutionContext,
        config: ComplianceWindow,
        lakehouse: Lakehouse,
        step_launcher: StepLauncherParam,
    ):
        import pandas as pd

        end = datetime.now(UTC)
        start = end - timedelta(days=config.days)
        try:
            log = lakehouse.read(audit_table)
        except TableNotFoundError:
            raise TableNotFoundError(
                f"{audit_table} does not exist yet: no lifecycle action was recorded"
            ) from None
        log = log[(log["event_time"] >= pd.Timestamp(start)) & (log["event_time"] <= pd.Timestamp(end))]
        log = log.sort_values("event_time")
        by_action = log.groupby("action").size().sort_values(ascending=False)
        by_actor = log.groupby("actor").size().sort_values(ascending=False)
        key_actions = [
            "promoted",
            "approved",
            "refused",
            "rolled_back",
            "restored",
            "deployed",
            "deploy_failed",
        ]
        events = [
            {
                "time": f"{r.event_time:%Y-%m-%d %H:%M:%S}",
                "action": r.action,
                "object": r.object,
                "actor": r.actor,
                "details": r.details[:160],
            }
            for r in log[log["action"].isin(key_actions)].itertuples()
        ]
        text = (
            "\n\n".join(
                [
                    f"# Compliance report: {settings.target}, {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC",
                    f"{len(log)} audited actions by {len(by_actor)} actor(s).",
                    "## Actions\n"
                    + markdown_table([{"action": a, "count": int(n)} for a, n in by_action.items()]).value,
                    "## Actors\n"
                    + markdown_table([{"actor": a, "count": int(n)} for a, n in by_actor.items()]).value,
                    "## Governance events\n" + markdown_table(events).value,
                ]
            )
            + "\n"
        )
        path = Path(settings.reports_path, "compliance", f"compliance_{start:%Y%m%d}_{end:%Y%m%dT%H%M%S}.md")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return MaterializeResult(
            metadata={
                "period": f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC",
                "actions": len(log),
                **{f"count_{a}": int(by_action.get(a, 0)) for a in key_actions},
                "report": MetadataValue.md(text),
                "report_path": MetadataValue.path(str(path)),
            }
        )

    return [compliance_report]
