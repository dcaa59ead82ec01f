"""File-arrival sensor: one lifecycle run per new or changed landing file, once it is stable."""

import json
import time

from dagster import RunRequest, SensorEvaluationContext, SensorResult, SkipReason, sensor

from ..resources.landing import LandingVolume
from ..settings import Settings

INGEST_STEP = "ingest_landing_files"  # the ingestion op, named per use case by Names.op


def file_key(entry: dict) -> str:
    """Identity of one version of a file: path, size and modification time."""
    return f"{entry['file_path']}:{entry['size_bytes']}:{entry['modified_at'].timestamp():.6f}"


def file_arrival_sensor(settings: Settings, job, default_status):
    cfg = settings.automation.file_sensor
    landing, pattern = settings.landing_path, settings.dataset.file_pattern
    ingest_step = settings.names.op(INGEST_STEP)

    @sensor(
        name=settings.names.automation("landing_file_sensor"), job=job, minimum_interval_seconds=cfg.interval_seconds,
        default_status=default_status,
        description=(
            f"Watches {landing} for files matching {pattern!r}. Each new or changed file (path, size, "
            f"modification time), once unchanged for {cfg.stable_seconds} s and across two ticks, starts "
            f"exactly one `{job.name}` run that ingests that file and runs the retraining chain. The cursor "
            "(files seen and files waiting to settle) is kept by Dagster, so a daemon restart neither "
            "repeats nor misses a file."
        ),
    )
    def landing_file_sensor(context: SensorEvaluationContext, landing_volume: LandingVolume):
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
            requests.append(RunRequest(
                run_key=key,
                run_config={"ops": {ingest_step: {"config": {"files": [path]}}}},
                tags={"mlops/trigger": "file_arrival", "mlops/landing_file": path},
            ))
            done[path] = key
            waiting.pop(path, None)
        # Forget files that were removed, so the cursor does not grow without bound.
        done = {p: k for p, k in done.items() if p in present}
        waiting = {p: k for p, k in waiting.items() if p in present}
        cursor = json.dumps({"done": done, "waiting": waiting}, sort_keys=True)
        if requests:
            return SensorResult(run_requests=requests, cursor=cursor)
        reason = (f"waiting for {len(settling)} file(s) to stop changing: {', '.join(sorted(settling))}"
                  if settling else f"no new files in {landing}")
        return SensorResult(skip_reason=SkipReason(reason), cursor=cursor)

    return landing_file_sensor
