"""File-arrival sensors: one run per new or changed landing file, once it is stable: a dataset file
starts the lifecycle, an outcome file the monitoring job (outcomes -> performance)."""

import json
import time

from dagster import RunRequest, SensorEvaluationContext, SensorResult, SkipReason, sensor

from ..resources.landing import LandingVolume
from ..settings import Settings


def file_key(entry: dict) -> str:
    """Identity of one version of a file: path, size and modification time."""
    return f"{entry['file_path']}:{entry['size_bytes']}:{entry['modified_at'].timestamp():.6f}"


def file_arrival_sensor(settings: Settings, job, default_status):
    """Dataset files: each starts a lifecycle run (ingest, then the retraining chain)."""
    names = settings.names
    return _file_sensor(
        settings,
        job,
        default_status,
        "landing_file_sensor",
        settings.landing_path,
        settings.dataset.file_pattern,
        names.ingest(names.raw),
        "runs the retraining chain",
    )


def outcome_file_sensor(settings: Settings, job, default_status):
    """Outcome files: each starts a monitoring run (ingest, then judge the predictions they answer)."""
    names = settings.names
    return _file_sensor(
        settings,
        job,
        default_status,
        "outcome_file_sensor",
        settings.ground_truth_path,
        settings.monitoring.ground_truth.file_pattern,
        names.ingest(names.ground_truth),
        "judges the predictions the outcomes answer (model performance, decay, slices)",
    )


def _file_sensor(
    settings: Settings,
    job,
    default_status,
    name: str,
    landing: str,
    pattern: str,
    ingest_step: str,
    then: str,
):
    cfg = settings.automation.file_sensor

    @sensor(
        name=settings.names.automation(name),
        job=job,
        minimum_interval_seconds=cfg.interval_seconds,
        default_status=default_status,
        description=(
            f"Watches {landing} for files matching {pattern!r}. Each new or changed file (path, size, "
            f"modification time), once unchanged for {cfg.stable_seconds} s and across two ticks, starts "
            f"exactly one `{job.name}` run that ingests that file and {then}. The cursor "
            "(files seen and files waiting to settle) is kept by Dagster, so a daemon restart neither "
            "repeats nor misses a file."
        ),
    )
    def file_sensor(context: SensorEvaluationContext, landing_volume: LandingVolume):
        state = json.loads(context.cursor) if context.cursor else {}
        done: dict[str, str] = state.get("done", {})
        waiting: dict[str, str] = state.get("waiting", {})
        now = time.time()
        present, requests, settling = set(), [], []
        for entry in landing_volume.files(landing, pattern):
            path, key = entry["file_path"], file_key(entry)
            present.add(path)
            if done.get(path) == key:
                continue
            stable = waiting.get(path) == key and now - entry["modified_at"].timestamp() >= cfg.stable_seconds
            if not stable:
                waiting[path] = key  # seen now; ingest once it is still the same on a later tick
                settling.append(path)
                continue
            requests.append(
                RunRequest(
                    run_key=key,
                    run_config={"ops": {ingest_step: {"config": {"files": [path]}}}},
                    tags={"mlops/trigger": "file_arrival", "mlops/landing_file": path},
                )
            )
            done[path] = key
            waiting.pop(path, None)
        # Forget files that were removed, so the cursor does not grow without bound.
        done = {p: k for p, k in done.items() if p in present}
        waiting = {p: k for p, k in waiting.items() if p in present}
        cursor = json.dumps({"done": done, "waiting": waiting}, sort_keys=True)
        if requests:
            return SensorResult(run_requests=requests, cursor=cursor)
        reason = (
            f"waiting for {len(settling)} file(s) to stop changing: {', '.join(sorted(settling))}"
            if settling
            else f"no new files in {landing}"
        )
        return SensorResult(skip_reason=SkipReason(reason), cursor=cursor)

    return file_sensor
