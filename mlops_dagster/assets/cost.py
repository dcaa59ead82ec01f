"""Group `governance`: what compute costs, per day, stage, asset, use case and target."""

from datetime import UTC, datetime
from pathlib import Path

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
)

from ..ml.cost import billed_by_day, daily_totals, spent_on, totals_by, window_start, window_totals
from ..monitoring.alerts import ALERTS_TABLE, raise_alert
from ..resources.billing import Billing, BillingError
from ..resources.lakehouse import Lakehouse
from ..resources.step_launcher import StepLauncherParam
from ..settings import CostSettings, Project, Settings
from .metadata import markdown_table

COSTS_TABLE = "run_costs"
BUDGET_CHECK = "within_daily_budget"
_TIMES = ("started_at", "finished_at")


class CostRecord(Config):
    """One step of a finished run: where it ran, how long, what it was estimated to cost (a row of
    ``run_costs``, made by cost_sensor)."""

    dagster_run_id: str
    job_name: str
    use_case: str
    target: str
    trigger: str
    step_key: str
    assets: str
    """The asset keys the step materialized, comma-separated."""
    stage: str
    status: str
    started_at: str
    """ISO 8601, UTC (as is ``finished_at``)."""
    finished_at: str
    seconds: float
    databricks_run_id: int
    """0: the step ran in the Dagster process."""
    compute_kind: str
    compute_node_type: str
    compute_nodes: int
    compute_availability: str
    compute_pool: str
    dbus_estimated: float | None
    cost_estimated: float | None
    """None: the rates do not price the step's node type (``cost_problem`` says which)."""
    currency: str
    cost_problem: str


class CostRecords(Config):
    records: list[CostRecord] = []
    """Step records from cost_sensor; empty: report on what is already recorded."""


def cost_assets(project: Project):
    settings = project.default
    endpoints = [u.serving.endpoint for u in project.use_cases]

    @asset(
        group_name="governance",
        kinds={"delta"},
        check_specs=_budget_checks(settings.cost),
        description=_description(settings),
    )
    def cost_report(
        context: AssetExecutionContext,
        config: CostRecords,
        lakehouse: Lakehouse,
        billing: Billing,
        step_launcher: StepLauncherParam,
    ):
        yield from report_costs(context, settings, endpoints, config.records, lakehouse, billing)

    return [cost_report]


def _budget_checks(rates: CostSettings) -> list[AssetCheckSpec]:
    if not rates.daily_budget:
        return []
    return [
        AssetCheckSpec(
            BUDGET_CHECK,
            asset="cost_report",
            description=f"Today's (UTC) compute cost stays within cost.daily_budget ({rates.daily_budget} {rates.currency}).",
        )
    ]


def _description(settings: Settings) -> str:
    return (
        f"Compute cost of every run's steps (recorded in `{settings.table(COSTS_TABLE)}` by cost_sensor): totals "
        f"by day, stage, asset, use case and target over the last {settings.cost.report_days} days, estimated "
        "from the cluster spec, the Jobs API's time and the rates in `cost`; on Databricks with "
        "cost.warehouse_id, compared with the actual usage in system.billing.usage. Crossing "
        "cost.daily_budget alerts once a day."
    )


def report_costs(
    context: AssetExecutionContext,
    settings: Settings,
    endpoints: list[str],
    records: list[CostRecord],
    lakehouse: Lakehouse,
    billing: Billing,
):
    """The `cost_report` asset: record the new step records, then report on the window (and check
    today's cost against the daily budget)."""
    import pandas as pd

    rates, table = settings.cost, settings.table(COSTS_TABLE)
    new = _record(context, lakehouse, table, records)
    now = datetime.now(UTC)
    since = window_start(now, rates.report_days)
    records = lakehouse.read(table) if lakehouse.exists(table) else _frame([])
    records = records[records["finished_at"] >= pd.Timestamp(since)]
    source = billing.source
    launched = sorted({int(r) for r in records["databricks_run_id"] if r > 0})
    try:
        actual = billing.usage(since.date(), endpoints, launched)
    except BillingError as exc:  # the estimates are recorded; the actual figures wait for the next report
        actual, source = None, f"failed: {exc}"
        context.log.warning(f"no actual usage in this report: {exc}")
    today = f"{now:%Y-%m-%d}"
    estimated, billed = daily_totals(records), billed_by_day(actual)
    spent = spent_on(today, estimated, billed)
    text = _report(settings.target, rates, records, actual, source, since, spent, estimated, billed)
    path = Path(settings.reports_path, "cost", f"cost_{now:%Y%m%dT%H%M%S}.md")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    metadata = {
        "currency": rates.currency,
        "window_days": rates.report_days,
        "steps_added": len(new),
        "runs_in_window": int(records["dagster_run_id"].nunique()),
        "cost_today": round(spent, 6),
        **window_totals(records),
        "actual_usage_from": source,
        "report": MetadataValue.md(text),
        "report_path": MetadataValue.path(str(path)),
    }
    if actual is not None:
        metadata["cost_actual_window"] = round(float(actual["cost_actual"].sum()), 6)
    yield MaterializeResult(metadata=metadata)
    if rates.daily_budget:
        yield _budget_check(context, lakehouse, settings, today, spent)


def _record(context: AssetExecutionContext, lakehouse: Lakehouse, table: str, records: list[CostRecord]):
    """Merge the sensor's step records into the costs table; the new rows as a frame."""
    new = _frame([record.model_dump() for record in records])
    if len(new):
        lakehouse.merge(
            table,
            new,
            ["dagster_run_id", "step_key"],
            description="One row per step of every finished run: where it ran, how long, what it "
            "was estimated to cost (cost_sensor -> cost_report).",
        )
        context.log.info(f"recorded {len(new)} steps of {new['dagster_run_id'].nunique()} runs in {table}")
    return new


def _budget_check(
    context, lakehouse: Lakehouse, settings: Settings, today: str, spent: float
) -> AssetCheckResult:
    rates = settings.cost
    over = spent > rates.daily_budget
    if over:
        _alert_once(context, lakehouse, settings, today, spent)
    return AssetCheckResult(
        check_name=BUDGET_CHECK,
        passed=not over,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "spent_today": round(spent, 6),
            "daily_budget": rates.daily_budget,
            "currency": rates.currency,
        },
    )


def _frame(rows: list[dict]):
    import pandas as pd

    frame = pd.DataFrame(rows, columns=list(CostRecord.model_fields))
    for column in _TIMES:
        frame[column] = pd.to_datetime(frame[column], utc=True)
    for column in ("seconds", "dbus_estimated", "cost_estimated"):
        frame[column] = pd.to_numeric(frame[column]).astype("float64")
    for column in ("databricks_run_id", "compute_nodes"):
        frame[column] = pd.to_numeric(frame[column]).astype("int64")
    return frame


def _report(target, rates, records, actual, source, since, spent, estimated, billed) -> str:
    c = rates.currency
    budget = (
        f"{spent:.4f} {c} of the daily budget of {rates.daily_budget} {c}"
        if rates.daily_budget
        else f"{spent:.4f} {c} (no cost.daily_budget set)"
    )
    # A step's assets (a checks step: its own key, e.g. sales_features_checks).
    records = records.assign(asset=records["assets"].where(records["assets"] != "", records["step_key"]))
    runs = (
        records.groupby(["dagster_run_id", "job_name"])
        .agg(
            finished=("finished_at", "max"),
            steps=("step_key", "size"),
            seconds=("seconds", "sum"),
            cost=("cost_estimated", "sum"),
        )
        .sort_values("finished", ascending=False)
        .head(10)
    )
    parts = [
        f"# Compute cost: {target}, since {since:%Y-%m-%d} (UTC)",
        f"Runs: {records['dagster_run_id'].nunique()}, steps: {len(records)}, compute hours: "
        f"{records['seconds'].sum() / 3600:.3f}, DBU: {records['dbus_estimated'].sum():.3f}, estimated cost: "
        f"{records['cost_estimated'].sum():.4f} {c}. Today: {budget}.",
        "## By day\n" + markdown_table(_by_day(estimated, billed if actual is not None else None, c)).value,
        *(
            f"## By {title}\n" + markdown_table(totals_by(records, column)).value
            for title, column in (
                ("stage", "stage"),
                ("asset", "asset"),
                ("use case", "use_case"),
                ("target", "target"),
            )
        ),
        "## Latest runs\n"
        + markdown_table(
            [
                {
                    "run": run[:8],
                    "job": job,
                    "finished": f"{r.finished:%Y-%m-%d %H:%M}",
                    "steps": int(r.steps),
                    "seconds": round(float(r.seconds), 1),
                    "cost": round(float(r.cost), 4),
                }
                for (run, job), r in runs.iterrows()
            ]
        ).value,
    ]
    problems = sorted(set(records["cost_problem"].dropna()) - {""})
    if problems:
        parts.append("## Not estimated\n" + "\n".join(f"- {p}" for p in problems))
    parts.append(f"## Actual usage\nSource: {source}.")
    if actual is not None:
        parts.append(_versus(records, actual, c))
    return "\n\n".join(parts) + "\n"


def _by_day(estimated: dict[str, float], billed: dict[str, float] | None, currency: str) -> list[dict]:
    """Estimated cost per day, and billed cost when there is a bill (``billed`` not None)."""
    if billed is None:
        return [{"day": d, f"{currency} est.": round(v, 4)} for d, v in sorted(estimated.items())]
    return [
        {
            "day": d,
            f"{currency} est.": round(estimated.get(d, 0.0), 4),
            f"{currency} actual": round(billed.get(d, 0.0), 4),
        }
        for d in sorted(set(estimated) | set(billed))
    ]


def _versus(records, actual, currency: str) -> str:
    """Estimate next to actual, per launched step (its job run's usage: a cluster's, or serverless
    compute's, which has no cluster tags); the endpoints' actual usage."""
    import pandas as pd

    runs = actual.assign(databricks_run_id=pd.to_numeric(actual["databricks_run_id"], errors="coerce"))
    steps = (
        runs[runs["databricks_run_id"].notna()]
        .groupby("databricks_run_id")
        .agg(dbus_actual=("dbus_actual", "sum"), cost_actual=("cost_actual", "sum"))
        .reset_index()
    )
    launched = records[records["databricks_run_id"] > 0]
    joined = launched.merge(steps, on="databricks_run_id", how="left")
    rows = [
        {
            "run": r.dagster_run_id[:8],
            "step": r.step_key,
            "databricks run": int(r.databricks_run_id),
            "DBU est.": _shown(r.dbus_estimated, "not estimated"),
            "DBU actual": _shown(r.dbus_actual),
            f"{currency} est.": _shown(r.cost_estimated, "not estimated"),
            f"{currency} actual": _shown(r.cost_actual),
        }
        for r in joined.itertuples()
    ]
    served = (
        actual[actual["endpoint_name"].notna()]
        .groupby("endpoint_name")
        .agg(dbus=("dbus_actual", "sum"), cost=("cost_actual", "sum"))
        .reset_index()
    )
    return "\n\n".join(
        [
            f"Launched steps: estimated {joined['cost_estimated'].sum():.4f} {currency}, actual "
            f"{joined['cost_actual'].sum():.4f} {currency} (list prices; usage appears in the billing tables within hours).",
            markdown_table(rows).value,
            "Serving endpoints:\n\n"
            + markdown_table(
                [
                    {
                        "endpoint": r.endpoint_name,
                        "DBU": round(float(r.dbus), 4),
                        currency: round(float(r.cost), 4),
                    }
                    for r in served.itertuples()
                ]
            ).value,
        ]
    )


def _shown(value, missing: str = "not billed yet") -> object:
    return missing if value is None or value != value else round(float(value), 4)


def _alert_once(context, lakehouse: Lakehouse, settings, today: str, spent: float) -> None:
    """One `budget` alert per UTC day: a later report that day finds it in the alerts table."""
    alerts_table = settings.table(ALERTS_TABLE)
    if lakehouse.exists(alerts_table):
        alerts = lakehouse.read(alerts_table, columns=["alerted_at", "kind"])
        if ((alerts["kind"] == "budget") & (alerts["alerted_at"].dt.strftime("%Y-%m-%d") == today)).any():
            context.log.info(
                f"daily budget crossed ({spent:.4f} {settings.cost.currency}); already alerted today"
            )
            return
    summary = (
        f"compute cost today ({today}, UTC) is {spent:.4f} {settings.cost.currency}, over the daily budget of "
        f"{settings.cost.daily_budget} {settings.cost.currency} on {settings.target}"
    )
    context.log.warning(summary)
    raise_alert(
        lakehouse,
        settings,
        "budget",
        summary,
        {
            "day": today,
            "spent": spent,
            "target": settings.target,
            "daily_budget": settings.cost.daily_budget,
            "currency": settings.cost.currency,
        },
        context.run.run_id,
        about="project",
    )
