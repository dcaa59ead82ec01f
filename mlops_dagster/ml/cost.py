"""What compute costs: the estimate of one launched step and the report's totals. Pure functions
of a cluster spec, a duration and the rates in ``CostSettings`` (no Dagster, no Databricks).

An estimate is Databricks' part of the bill: DBUs (nodes x hours x DBUs per node-hour) times the
price of a DBU for the compute type. The cloud provider bills the VMs apart; spot instances make
that part cheaper, not the DBUs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from ..settings import ClusterSettings, CostSettings

LOCAL = "local"
SERVERLESS = "serverless"


@dataclass(frozen=True)
class Compute:
    """Where a step ran: ``kind`` is ``jobs`` (a job cluster), ``all_purpose`` (an existing
    cluster), ``serverless`` (serverless jobs compute: Databricks sizes it) or ``local`` (the
    Dagster process: no DBUs)."""

    kind: str
    node_type: str = ""
    nodes: int = 0  # driver + the most workers the cluster may scale to
    availability: str = ""  # the spot policy asked for ("" for a pool's or an existing cluster's)
    pool: str = ""


def cluster_compute(cluster: ClusterSettings) -> Compute:
    """The compute a launched step asks for. Autoscaling clusters are costed at their largest
    size (driver + ``max_workers``): an upper bound that the actual usage corrects."""
    nodes = 1 + cluster.max_workers
    if cluster.existing_cluster_id:
        return Compute("all_purpose", cluster.node_type_id, nodes)
    if cluster.instance_pool_id:
        return Compute("jobs", cluster.node_type_id, nodes, pool=cluster.instance_pool_id)
    return Compute("jobs", cluster.node_type_id, nodes, cluster.availability)


@dataclass(frozen=True)
class Estimate:
    dbus: float | None
    cost: float | None
    problem: str = ""  # why there is no figure (a rate missing from the config)


def estimate(compute: Compute, seconds: float, rates: CostSettings) -> Estimate:
    """DBUs and cost of ``compute`` used for ``seconds``."""
    if compute.kind == LOCAL:
        return Estimate(0.0, 0.0)
    if compute.kind == SERVERLESS:
        return Estimate(
            None,
            None,
            "serverless jobs compute: Databricks sizes it, so its DBUs are known only from "
            "system.billing.usage (set cost.warehouse_id to read them)",
        )
    per_node = rates.dbu_per_node_hour.get(compute.node_type)
    if per_node is None:
        return Estimate(
            None,
            None,
            f"no DBU rate for node type {compute.node_type!r}: "
            f"set cost.dbu_per_node_hour.{compute.node_type} in the target config",
        )
    dbus = compute.nodes * per_node * max(seconds, 0.0) / 3600.0
    return Estimate(dbus, dbus * getattr(rates.dbu_price, compute.kind))


def compute_fields(compute: Compute) -> dict[str, Any]:
    return {f"compute_{k}": v for k, v in asdict(compute).items()}


def daily_totals(records) -> dict[str, float]:
    """Estimated cost per UTC day (``YYYY-MM-DD``) of a frame of records with ``finished_at``."""
    if records.empty:
        return {}
    days = records["finished_at"].dt.tz_convert("UTC").dt.strftime("%Y-%m-%d")
    return {
        day: float(total) for day, total in records["cost_estimated"].fillna(0.0).groupby(days).sum().items()
    }


def totals_by(records, by: str) -> list[dict[str, Any]]:
    """Steps, hours, DBUs and cost per value of ``by``, most expensive first."""
    if records.empty:
        return []
    grouped = (
        records.groupby(by, dropna=False)
        .agg(
            steps=("step_key", "size"),
            hours=("seconds", lambda s: s.sum() / 3600.0),
            dbus=("dbus_estimated", "sum"),
            cost=("cost_estimated", "sum"),
        )
        .sort_values(["cost", "hours"], ascending=False)
    )
    return [
        {
            by: key,
            "steps": int(row.steps),
            "hours": round(float(row.hours), 4),
            "dbus": round(float(row.dbus), 4),
            "cost": round(float(row.cost), 4),
        }
        for key, row in grouped.iterrows()
    ]


def window_start(now: datetime, days: int) -> datetime:
    """The first instant a report on the last ``days`` days covers: midnight (in ``now``'s time
    zone) ``days`` days before ``now``."""
    return (now - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)


def billed_by_day(actual) -> dict[str, float]:
    """Billed cost (steps and endpoints) per day (``YYYY-MM-DD``) of a frame of actual usage with
    ``usage_date`` and ``cost_actual``; empty without a bill (None or no rows)."""
    if actual is None or actual.empty:
        return {}
    return {
        day: float(v)
        for day, v in actual.groupby(actual["usage_date"].astype(str))["cost_actual"].sum().items()
    }


def spent_on(day: str, estimated: dict[str, float], billed: dict[str, float]) -> float:
    """What ``day`` cost so far: the larger of the estimate and the bill (the bill lags by hours;
    the estimate leaves out the serving endpoints)."""
    return max(estimated.get(day, 0.0), billed.get(day, 0.0))


def window_totals(records) -> dict[str, float]:
    """Estimated cost, DBUs and compute hours of a frame of records (a report's window)."""
    return {
        "cost_window": round(float(records["cost_estimated"].sum()), 6),
        "dbus_window": round(float(records["dbus_estimated"].sum()), 6),
        "compute_hours_window": round(float(records["seconds"].sum()) / 3600, 4),
    }
