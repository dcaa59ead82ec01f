"""Benchmark: the whole lifecycle at scale, and bad input at scale (issue 11).

    .venv/bin/python bench/scale.py --rows 1000000 10000000 [--bad-rows 1000000] [--keep]
    .venv/bin/python bench/scale.py --rows --bad-rows 1000000      # bad input only
    .venv/bin/python bench/scale.py --rows 1000000 --outcomes      # + outcomes judged (issue 13)

For each size, in a fresh temporary MLOPS_HOME and DAGSTER_HOME on the disk under /tmp (10M rows
are ~1.4 GB of CSV, plus the tables): `mlops generate --rows N` (timed apart: not part of the
lifecycle), then `mlops run --use-case churn` (the telco demo) in its own process, timed wall to wall, and `mlops stop` for the
serving gateway it leaves running. While a process runs, /proc is polled every 0.25 s: the peak
RSS of the process itself (its VmHWM), of its Spark JVM, of the serving gateway it starts, and the
peak of the summed RSS of the PySpark Python workers (the JVM's Python descendants) and of the
other children; and the CPU seconds (user and kernel) and minor page faults of each kind of
process and of the whole tree. The whole machine's CPU over the run (user, kernel, idle, from
/proc/stat) shows how busy both cores were and how much went to the kernel, which on this
virtual machine is a large and varying share (see docs/benchmarks.md).

Per-stage durations come from the run's own Dagster instance: per step STEP_START ->
STEP_SUCCESS/STEP_FAILURE, summed per asset group. A step is mapped to its group through the
assets it plans to materialize or check (ASSET_MATERIALIZATION_PLANNED and
ASSET_CHECK_EVALUATION_PLANNED, recorded with their step key when the run starts, so a step that
fails still counts), and the group of each asset from the asset graph of
`mlops_dagster.definitions`, loaded in a subprocess with the run's environment. Nothing depends on
op or step names, and an asset check counts in its asset's group. The rows of each table come from
the materializations' `dagster/row_count`.

`--bad-rows N`: N generated rows of which exactly 1% are made bad, deterministically (seed 11),
streamed line by line: a non-number in `tenure` or `monthlyCharges`, an out-of-range `tenure`
(99) or `monthlyCharges` (-5), and pairs of rows sharing a `customerID` (a row takes the key of
an earlier, otherwise untouched row; both must be quarantined), in about equal shares. Then only
ingestion runs (`dagster asset materialize --select raw_customers,raw_customers_quarantine`, with
those assets' checks): exactly the corrupted lines must be quarantined, and rows loaded + rows
quarantined = rows read. The corruption holds the file's keys in memory, never the file.

Goals (issue 11): 1M rows <= 90 s, 10M rows <= 10 min, time(10M)/time(1M) <= 10, peak RSS of the
Dagster run process <= 3 GB (10^9 bytes) at 10M rows. Results are printed as Markdown and written
to bench/results/scale.json; each process's output goes to bench/results/scale_*.log. The
temporary directories are deleted afterwards unless --keep. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import platform
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RESULTS = REPO / "bench" / "results"
STAGES = ["ingestion", "features", "training", "registry", "serving", "inference", "monitoring"]
POLL_SECONDS = 0.25

KEY, BAD_SHARE, BAD_SEED = "customerID", 0.01, 11
WRONG_TYPE = {"tenure": "abc", "monthlyCharges": "abc"}
OUT_OF_RANGE = {"tenure": "99", "monthlyCharges": "-5"}  # contract: tenure 0..72, monthlyCharges >= 0
INGESTION_ASSETS = "churn/raw_customers,churn/raw_customers_quarantine"  # the demo use case's

# Asset key -> asset group, printed as JSON by the code location itself.
_GROUPS_SCRIPT = """
import json
from mlops_dagster.definitions import defs
graph = defs.resolve_asset_graph()
# Keys and groups without the use case (`churn/raw_customers` in `churn_ingestion`: raw_customers, ingestion).
print(json.dumps({key.path[-1]: graph.get(key).group_name.removeprefix(key.path[0] + "_")
                  for key in graph.get_all_asset_keys()}))
"""


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- processes: their memory and CPU --------------------------------------------------------

TICKS = os.sysconf("SC_CLK_TCK")


def _processes() -> dict[int, tuple[int, float, float, int]]:
    """pid -> (ppid, user CPU s, kernel CPU s, minor page faults) of every process, from /proc/<pid>/stat."""
    found = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:  # gone in between
                continue
            fields = stat[stat.rindex(")") + 2 :].split()  # from field 3 (state) on: see proc(5)
            found[int(entry.name)] = (
                int(fields[1]),
                int(fields[11]) / TICKS,
                int(fields[12]) / TICKS,
                int(fields[7]),
            )
    return found


def _machine_cpu() -> dict[str, float]:
    """CPU seconds the whole machine spent so far, from /proc/stat (all cores)."""
    user, nice, system, idle, iowait, irq, softirq, steal = map(
        int, Path("/proc/stat").read_text().split()[1:9]
    )
    return {
        "user": (user + nice) / TICKS,
        "kernel": (system + irq + softirq) / TICKS,
        "idle": (idle + iowait) / TICKS,
        "steal": steal / TICKS,
    }


def _status(pid: int) -> dict[str, str]:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _short(pid: int | None, commands: dict[int, str]) -> str:
    """A process's command, shortened to what names it: ``-m module``, a script, or the program."""
    words = commands.get(pid, "").split()
    if "-m" in words[:-1]:
        return "-m " + words[words.index("-m") + 1]
    return next((Path(w).name for w in words[1:] if w.endswith(".py")), Path(words[0]).name if words else "")


def _kib(value: str | None) -> int:
    return int(value.split()[0]) * 1024 if value else 0


class ProcessTree:
    """Peak memory and CPU of a process and its descendants, polled from /proc (psutil is not installed).

    Per process the highest VmHWM (the kernel's own peak RSS) is kept, so a peak between two polls
    still counts; for groups of processes (PySpark workers, other children, the whole tree) the
    highest sum of their VmRSS at one poll is kept. CPU (user and kernel seconds) and minor page
    faults are each process's counters at its last poll, summed per kind: a process's last quarter
    second can be missing.
    """

    def __init__(self, root: int):
        self.root = root
        self.peak: dict[int, int] = {}  # pid -> highest VmHWM
        self.kind: dict[int, str] = {}  # pid -> what it is (as last seen: a launcher may exec java)
        self.name: dict[int, str] = {}  # pid -> program name, and its command line
        self.command: dict[int, str] = {}
        self.peak_sum: dict[str, int] = {}  # kind -> highest summed VmRSS; "tree" for all
        self.cpu: dict[int, tuple[float, float, int]] = {}  # pid -> (user s, kernel s, minor faults)
        self.samples = 0

    def _cpu_of(self, pids: list[int]) -> dict:
        return {
            "user": round(sum(self.cpu[p][0] for p in pids), 1),
            "kernel": round(sum(self.cpu[p][1] for p in pids), 1),
            "minor_faults": sum(self.cpu[p][2] for p in pids),
        }

    def _kind_of(self, pid: int, name: str, cmd: str, parent_kind: str | None) -> str:
        if pid == self.root:
            return "run_process"
        if parent_kind in ("spark_jvm", "pyspark_workers") and name.startswith("python"):
            return "pyspark_workers"
        if name == "java" and "deploy.SparkSubmit" in cmd and "launcher.Main" not in cmd:  # not the launcher
            return "spark_jvm"
        if "mlops_dagster.serving" in cmd:
            return "serving_gateway"
        return "other_children"

    def sample(self) -> None:
        processes = _processes()
        parents = {pid: found[0] for pid, found in processes.items()}
        children: dict[int, list[int]] = {}
        for pid, ppid in parents.items():
            children.setdefault(ppid, []).append(pid)
        sums: dict[str, int] = {}
        now: dict[int, str] = {}
        queue = [self.root]  # breadth first: a parent is classified before its children
        while queue:
            pid = queue.pop(0)
            queue += children.get(pid, [])
            status = _status(pid)
            if "VmRSS" not in status:  # a zombie, or gone
                continue
            name = status["Name"].strip()
            if self.name.get(pid) != name:  # new, or exec'd another program (spark-class execs java)
                self.name[pid], self.command[pid] = name, _cmdline(pid)
                self.peak[pid] = 0  # before an exec it was a fork of its parent, sharing its pages
            kind = now[pid] = self._kind_of(pid, name, self.command[pid], now.get(parents.get(pid)))
            self.kind[pid] = kind
            self.peak[pid] = max(self.peak.get(pid, 0), _kib(status.get("VmHWM")), _kib(status["VmRSS"]))
            if pid in processes:
                self.cpu[pid] = processes[pid][1:]
            rss = _kib(status["VmRSS"])
            sums[kind] = sums.get(kind, 0) + rss
            sums["tree"] = sums.get("tree", 0) + rss
        for kind, total in sums.items():
            self.peak_sum[kind] = max(self.peak_sum.get(kind, 0), total)
        self.samples += 1

    def summary(self) -> dict:
        def largest(kind: str) -> int:
            return max((p for pid, p in self.peak.items() if self.kind[pid] == kind), default=0)

        return {
            "run_process": self.peak.get(self.root, 0),
            "spark_jvm": largest("spark_jvm"),
            "pyspark_workers_sum": self.peak_sum.get("pyspark_workers", 0),
            "pyspark_worker_processes": sum(1 for k in self.kind.values() if k == "pyspark_workers"),
            "serving_gateway": largest("serving_gateway"),
            "other_children_sum": self.peak_sum.get("other_children", 0),
            "other_children_largest": _short(
                max(
                    (pid for pid in self.peak if self.kind[pid] == "other_children"),
                    key=self.peak.get,
                    default=None,
                ),
                self.command,
            ),
            "process_tree_sum": self.peak_sum.get("tree", 0),
            "cpu": {
                kind: self._cpu_of([p for p in self.cpu if kind == "tree" or self.kind[p] == kind])
                for kind in [*dict.fromkeys(self.kind[p] for p in self.cpu), "tree"]
            },
            "samples": self.samples,
            "processes": [
                {"pid": pid, "kind": self.kind[pid], "peak_rss": peak, "command": self.command[pid][:200]}
                for pid, peak in sorted(self.peak.items(), key=lambda item: -item[1])
            ],
        }


def _run_measured(cmd: list[str], env: dict[str, str], log: Path) -> dict:
    """Run ``cmd`` with its output in ``log``: exit code, wall seconds, peak memory and CPU (of its
    processes, and of the whole machine meanwhile)."""
    with open(log, "w") as out:
        start, machine_start = time.perf_counter(), _machine_cpu()
        proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        tree = ProcessTree(proc.pid)
        try:
            while True:
                tree.sample()
                pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                time.sleep(POLL_SECONDS)
        except BaseException:  # interrupted: do not leave the run behind
            proc.kill()
            proc.wait()
            raise
        seconds = time.perf_counter() - start
        machine = {k: round(v - machine_start[k], 1) for k, v in _machine_cpu().items()}
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    usage = tree.summary()
    usage["machine_cpu"] = machine
    # ru_maxrss: the peak of the process or of any child it reaped, whichever is larger (KiB).
    usage["rusage_maxrss"] = rusage.ru_maxrss * 1024
    _log(f"  exit {proc.returncode} after {seconds:.1f} s")
    if not usage["run_process"]:  # too short to be sampled even once
        usage["run_process"] = usage["rusage_maxrss"]
    return {
        "command": " ".join([Path(cmd[0]).name, *cmd[1:]]),
        "returncode": proc.returncode,
        "seconds": round(seconds, 2),
        "usage": usage,
        "log": str(log),
    }


def _tail(path: Path | str, lines: int = 40) -> str:
    return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])


# --- fresh homes ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


SETTINGS: dict[str, object] = {}  # project settings laid over every run's (from the command line)


@contextlib.contextmanager
def _fresh_homes(label: str, keep: bool):
    """A temporary directory under /tmp with MLOPS_HOME, DAGSTER_HOME (the repo's dagster.yaml, as
    `make` does) and the serving gateway on a free port; yields (directory, environment)."""
    tmp = Path(tempfile.mkdtemp(prefix=f"mlops-scale-{label}-", dir="/tmp"))
    try:
        home = tmp / "dagster_home"
        home.mkdir()
        shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
        conf = tmp / "bench.yaml"
        conf.write_text(
            f"serving:\n  port: {_free_port()}\n" + "".join(f"{k}: {v}\n" for k, v in SETTINGS.items())
        )
        scratch = tmp / "scratch"  # Spark's spills and Python's temporary files: deleted with the rest
        scratch.mkdir()
        env = {
            **os.environ,
            "MLOPS_HOME": str(tmp / "mlops"),
            "DAGSTER_HOME": str(home),
            "MLOPS_TARGET": "local",
            "MLOPS_CONFIG": str(conf),
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
            "TMPDIR": str(scratch),
            "SPARK_LOCAL_DIRS": str(scratch),
        }
        yield tmp, env
    finally:
        if keep:
            _log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _stop_gateway(env: dict[str, str], log: Path) -> None:
    stopped = subprocess.run([str(BIN / "mlops"), "stop"], env=env, cwd=REPO, capture_output=True, text=True)
    with open(log, "a") as out:
        out.write(f"\n--- mlops stop (exit {stopped.returncode}) ---\n{stopped.stdout}{stopped.stderr}")


# --- what the run recorded -------------------------------------------------------------------


def _asset_groups(env: dict[str, str]) -> dict[str, str]:
    """Asset key -> group, from the code location loaded with the run's environment ({} if it fails)."""
    out = subprocess.run(
        [sys.executable, "-c", _GROUPS_SCRIPT], env=env, cwd=REPO, capture_output=True, text=True
    )
    if out.returncode != 0 or not out.stdout.strip():
        _log(f"could not load the asset groups: {out.stderr.strip()[-500:]}")
        return {}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _plain(metadata: dict) -> dict:
    values = {key: getattr(value, "value", value) for key, value in metadata.items()}
    return {key: value for key, value in values.items() if isinstance(value, (int, float, str, bool))}


def _run_record(dagster_home: Path) -> dict | None:
    """The run of a fresh Dagster instance: its steps, the assets of each step and what they wrote."""
    from dagster import DagsterEventType as T
    from dagster import DagsterInstance

    with DagsterInstance.from_config(str(dagster_home)) as instance:
        runs = instance.get_runs(limit=1)
        if not runs:
            return None
        run = runs[0]
        entries = instance.all_logs(run.run_id)
    steps: dict[str, dict] = {}
    step_assets: dict[str, set[str]] = {}
    materialized: dict[str, dict] = {}  # asset -> its (plain) materialization metadata
    planned = {
        T.ASSET_MATERIALIZATION_PLANNED,
        T.ASSET_CHECK_EVALUATION_PLANNED,
        T.ASSET_MATERIALIZATION,
        T.ASSET_CHECK_EVALUATION,
    }
    for entry in entries:
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type == T.STEP_START:
            steps[entry.step_key] = {
                "step": entry.step_key,
                "start": entry.timestamp,
                "seconds": None,
                "status": "unfinished",
            }
        elif event.event_type in (T.STEP_SUCCESS, T.STEP_FAILURE) and entry.step_key in steps:
            step = steps[entry.step_key]
            step["seconds"] = entry.timestamp - step["start"]
            step["status"] = "success" if event.event_type == T.STEP_SUCCESS else "failure"
            if event.event_type == T.STEP_FAILURE and event.step_failure_data.error:
                error = event.step_failure_data.error
                step["error"] = ((error.cause or error).message or "").strip()[:300]
        if event.event_type in planned and entry.step_key:
            key = event.asset_key or getattr(event.event_specific_data, "asset_key", None)
            if key is not None:
                step_assets.setdefault(entry.step_key, set()).add(key.path[-1])
        if event.event_type == T.ASSET_MATERIALIZATION:
            materialization = event.event_specific_data.materialization
            materialized[materialization.asset_key.path[-1]] = _plain(materialization.metadata)
    last = entries[-1].timestamp if entries else 0.0
    for step in steps.values():
        if step["seconds"] is None:  # the process died inside the step
            step["seconds"] = last - step["start"]
    return {
        "run_id": run.run_id,
        "job": run.job_name,
        "status": run.status.value,
        "seconds": round(last - entries[0].timestamp, 2) if entries else 0.0,
        "steps": sorted(steps.values(), key=lambda s: s["start"]),
        "step_assets": {k: sorted(v) for k, v in step_assets.items()},
        "materialized": materialized,
    }


def _stages(record: dict, groups: dict[str, str]) -> list[dict]:
    """Per stage (asset group), in lifecycle order: the time at least one of its steps worked
    (steps run at once, so their durations overlap), and its steps."""
    stages: dict[str, dict] = {}
    for step in record["steps"]:
        names = {
            groups.get(asset, "(group unknown)") for asset in record["step_assets"].get(step["step"], [])
        }
        name = "+".join(sorted(names, key=_stage_rank)) or "(no asset)"
        stage = stages.setdefault(name, {"stage": name, "windows": [], "steps": []})
        stage["windows"].append(step)
        stage["steps"].append(
            {
                key: round(value, 2) if key == "seconds" else value
                for key, value in step.items()
                if key != "start"
            }
        )
    for stage in stages.values():
        stage["seconds"] = round(covered(stage.pop("windows")), 2)
    return sorted(stages.values(), key=lambda s: _stage_rank(s["stage"].split("+")[0]))


def covered(steps: list[dict]) -> float:
    """Seconds during which at least one of ``steps`` (each a ``start`` and ``seconds``) ran."""
    total, end = 0.0, float("-inf")
    for step in sorted(steps, key=lambda s: s["start"]):
        start, stop = step["start"], step["start"] + step["seconds"]
        total += max(0.0, stop - max(start, end))
        end = max(end, stop)
    return total


def _stage_rank(group: str) -> int:
    return STAGES.index(group) if group in STAGES else len(STAGES)


# --- the lifecycle at one size ---------------------------------------------------------------


def _generate(result: dict, rows: int, env: dict[str, str], log: Path) -> bool:
    """`mlops generate --rows N`, measured into ``result["generate"]``; False (and the error
    recorded) when it failed."""
    _log(f"generating {rows:,} rows ...")
    result["generate"] = _run_measured(
        [str(BIN / "mlops"), "generate", "--use-case", "churn", "--rows", str(rows)], env, log
    )
    if result["generate"]["returncode"] != 0:
        result["error"] = "generate failed"
        return False
    return True


def _outcomes(result: dict, rows: int, env: dict[str, str]) -> None:
    """After the lifecycle, in the same homes: outcomes for every scored customer from the changed
    world (`mlops generate --outcomes --changed-world`), then the monitoring job, measured; its
    steps into ``result["outcomes"]``."""
    _log(f"generating {rows:,} outcomes and judging the champion's predictions ...")
    made = _run_measured(
        [
            str(BIN / "mlops"),
            "generate",
            "--use-case",
            "churn",
            "--rows",
            str(rows),
            "--outcomes",
            "--changed-world",
        ],
        env,
        RESULTS / f"scale_{rows}_outcomes_generate.log",
    )
    log = RESULTS / f"scale_{rows}_monitoring_run.log"
    run = _run_measured([str(BIN / "mlops"), "run", "--use-case", "churn", "--job", "monitoring"], env, log)
    record = _run_record(Path(env["DAGSTER_HOME"]))
    steps = {s["step"].split("__")[-1]: round(s["seconds"], 2) for s in record["steps"]} if record else {}
    judged = (record or {}).get("materialized", {}).get("churn_model_performance", {})
    result["outcomes"] = {
        "generate_seconds": made["seconds"],
        "run": run,
        "steps": steps,
        "labelled_predictions": judged.get("labelled_predictions"),
        "verdict": judged.get("verdict"),
    }


def _lifecycle(rows: int, keep: bool, outcomes: bool = False) -> dict:
    result: dict = {"rows": rows}
    with _fresh_homes(f"{rows}", keep) as (tmp, env):
        result["directory"] = str(tmp) if keep else None
        if not _generate(result, rows, env, RESULTS / f"scale_{rows}_generate.log"):
            return result
        _log(f"running the lifecycle on {rows:,} rows ...")
        log = RESULTS / f"scale_{rows}_run.log"
        try:
            result["run"] = _run_measured([str(BIN / "mlops"), "run", "--use-case", "churn"], env, log)
        finally:  # the run leaves its serving gateway up, as `make run` does: stop it
            _stop_gateway(env, log)
        if result["run"]["returncode"] != 0:
            result["error"] = "mlops run failed"
        record = _run_record(Path(env["DAGSTER_HOME"]))
        if record is None:
            result.setdefault("error", "no Dagster run was recorded")
            return result
        result["dagster_run"] = {k: v for k, v in record.items() if k not in ("steps", "step_assets")}
        # Steps run at once, and so do stages (a stage's checks beside the next stage's steps).
        result["dagster_run"]["seconds_in_steps"] = round(covered(record["steps"]), 2)
        result["stages"] = _stages(record, _asset_groups(env))
        if outcomes and "error" not in result:
            _outcomes(result, rows, env)
    return result


# --- bad input at scale ----------------------------------------------------------------------


def _keys(path: Path):
    """The key of each data row of a CSV file, streamed. Rows must be one per line (as the generator
    writes them), so that data row i is line i + 2."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        key = next(reader).index(KEY)
        for row, fields in enumerate(reader):
            if reader.line_num != row + 2:
                raise SystemExit(f"{path}: line {reader.line_num} is blank or a record spans several lines")
            yield fields[key]


def _rows_sharing_keys(path: Path) -> tuple[int, list[int]]:
    """Data rows in a CSV file, and the rows whose key is already not unique (those are quarantined
    too, so they are left alone and counted). Holds the keys in memory, never the file."""
    seen: set[str] = set()
    repeated: set[str] = set()
    rows = 0
    for rows, key in enumerate(_keys(path), 1):  # noqa: B007 (rows: the count, read after the loop)
        if key in seen:
            repeated.add(key)
        seen.add(key)
    seen.clear()
    return rows, [row for row, key in enumerate(_keys(path)) if key in repeated] if repeated else []


def _plan_corruption(rows: int, excluded: list[int], seed: int) -> dict:
    """Which rows to make bad and how: 1% of ``rows``, a third each wrong type, out of range and
    duplicated keys (in pairs of distinct, otherwise untouched rows)."""
    bad = int(rows * BAD_SHARE)
    duplicate_rows = bad // 3 // 2 * 2
    wrong_type = (bad - duplicate_rows + 1) // 2
    out_of_range = bad - duplicate_rows - wrong_type
    rng = random.Random(seed)
    picks = rng.sample(range(rows - len(excluded)), bad)
    for skip in sorted(excluded):  # map onto the rows that are not excluded
        picks = [p + 1 if p >= skip else p for p in picks]
    edits: dict[int, tuple] = {}
    for row in picks[:wrong_type]:
        column = rng.choice(sorted(WRONG_TYPE))
        edits[row] = ("wrong_type", column, WRONG_TYPE[column])
    for row in picks[wrong_type : wrong_type + out_of_range]:
        column = rng.choice(sorted(OUT_OF_RANGE))
        edits[row] = ("out_of_range", column, OUT_OF_RANGE[column])
    pairs = picks[wrong_type + out_of_range :]
    sources = {}
    for a, b in zip(pairs[::2], pairs[1::2]):
        source, target = min(a, b), max(a, b)  # the source is read first, so its key is known
        edits[target] = ("duplicate_key", KEY, source)
        sources[source] = target
    quarantined = set(edits) | set(sources) | set(excluded)
    return {
        "edits": edits,
        "sources": sources,
        "expected_lines": sorted(r + 2 for r in quarantined),
        "counts": {
            "wrong_type": wrong_type,
            "out_of_range": out_of_range,
            "duplicate_key_rows": duplicate_rows,
            "preexisting_duplicate_rows": len(excluded),
        },
    }


def _write_corrupted(src: Path, dst: Path, plan: dict) -> None:
    """Copy ``src`` to ``dst`` line by line, rewriting only the planned rows."""
    edits, sources, copied = plan["edits"], plan["sources"], {}
    partial = dst.with_suffix(".partial")  # not matching *.csv until complete
    with open(src, newline="") as fin, open(partial, "w", newline="") as fout:
        header_line = fin.readline()
        header = next(csv.reader([header_line]))
        writer = csv.writer(fout, lineterminator=header_line[len(header_line.rstrip("\r\n")) :] or "\n")
        fout.write(header_line)
        for row, line in enumerate(fin):
            if row in sources:  # left as it is: a later row takes its key
                copied[row] = next(csv.reader([line]))[header.index(KEY)]
            if row not in edits:
                fout.write(line)
                continue
            fields = next(csv.reader([line]))
            kind, column, value = edits[row]
            fields[header.index(column)] = copied.pop(value) if kind == "duplicate_key" else value
            writer.writerow(fields)
    partial.replace(dst)


def _md_cell(report: str, file_name: str, column: str) -> int | None:
    """A number from the per-file Markdown report (`files` metadata) of the ingestion asset."""
    lines = [line.strip().strip("|").split("|") for line in report.splitlines() if line.startswith("|")]
    if len(lines) < 3:
        return None
    header = [h.strip() for h in lines[0]]
    for cells in lines[2:]:
        cells = [c.strip() for c in cells]
        if file_name in cells and column in header:
            value = cells[header.index(column)].replace(",", "")
            return int(value) if value.isdigit() else None
    return None


def _delta_table(metadata: dict, mlops_home: str, table: str):
    from deltalake import DeltaTable

    path = metadata.get("dagster/uri") or str(Path(mlops_home, "lakehouse", "ml_dev_catalog", "mlops", table))
    try:
        return DeltaTable(path)
    except Exception as exc:  # noqa: BLE001 - reported, not fatal
        _log(f"cannot open {path}: {exc}")
        return None


def _bad_input(rows: int, keep: bool) -> dict:
    result: dict = {"rows": rows}
    with _fresh_homes(f"bad{rows}", keep) as (tmp, env):
        result["directory"] = str(tmp) if keep else None
        if not _generate(result, rows, env, RESULTS / f"scale_bad_{rows}_generate.log"):
            return result
        printed = Path(result["generate"]["log"]).read_text().split()
        generated = next(
            (Path(w) for w in reversed(printed) if w.endswith(".csv") and Path(w).is_file()), None
        )
        if generated is None:
            result["error"] = "generate printed no file path"
            return result
        clean = tmp / "clean.csv"
        generated.replace(clean)  # out of the landing volume: only the corrupted file is ingested
        _log(f"corrupting {rows * BAD_SHARE:,.0f} of {rows:,} rows ...")
        started = time.perf_counter()
        read, excluded = _rows_sharing_keys(clean)
        plan = _plan_corruption(read, excluded, BAD_SEED)
        bad_file = generated.with_name(f"customers_bad_{rows}.csv")
        _write_corrupted(clean, bad_file, plan)
        clean.unlink()
        result.update(
            rows_in_file=read,
            file=bad_file.name,
            corrupt_seconds=round(time.perf_counter() - started, 2),
            corrupted=plan["counts"],
            expected_quarantined=len(plan["expected_lines"]),
        )

        _log(f"ingesting {bad_file.name} ...")
        log = RESULTS / f"scale_bad_{rows}_ingest.log"
        result["ingest"] = _run_measured(
            [
                str(BIN / "dagster"),
                "asset",
                "materialize",
                "-m",
                "mlops_dagster.definitions",
                "--select",
                INGESTION_ASSETS,
            ],
            env,
            log,
        )
        record = _run_record(Path(env["DAGSTER_HOME"]))
        if record is None:
            result["error"] = "no Dagster run was recorded"
            return result
        result["dagster_run"] = {k: v for k, v in record.items() if k not in ("steps", "step_assets")}
        # Steps run at once, and so do stages (a stage's checks beside the next stage's steps).
        result["dagster_run"]["seconds_in_steps"] = round(covered(record["steps"]), 2)
        result["failed_steps"] = [
            {"step": s["step"], "error": s.get("error", s["status"])}
            for s in record["steps"]
            if s["status"] != "success"
        ]
        step = next(
            (s for s in record["steps"] if "raw_customers" in record["step_assets"].get(s["step"], [])), None
        )
        if step is None or step["status"] != "success":
            result["error"] = "the ingestion step " + ("did not run" if step is None else step["status"])
        else:
            result["ingest_step_seconds"] = round(step["seconds"], 2)
            result["checks"] = _bad_input_checks(
                read, bad_file.name, plan, record["materialized"], env["MLOPS_HOME"]
            )
    return result


def _bad_input_checks(
    read: int, file_name: str, plan: dict, materialized: dict, mlops_home: str
) -> list[dict]:
    expected = len(plan["expected_lines"])
    raw, quarantine = materialized.get("raw_customers", {}), materialized.get("raw_customers_quarantine", {})
    loaded, quarantined = raw.get("rows_loaded"), quarantine.get("rows_quarantined_this_run")
    checks = [
        ("rows quarantined (run metadata `rows_quarantined_this_run`)", expected, quarantined),
        (
            "rows loaded + rows quarantined (run metadata) = rows in the file",
            read,
            None if loaded is None or quarantined is None else loaded + quarantined,
        ),
    ]
    report = raw.get("files") or quarantine.get("files")
    if isinstance(report, str):
        checks.append(
            ("rows read, as the per-file report says", read, _md_cell(report, file_name, "rows_read"))
        )
    quarantine_table = _delta_table(quarantine, mlops_home, "raw_customers_quarantine")
    if quarantine_table is not None:
        checks.append(("rows in the quarantine Delta table", expected, quarantine_table.count()))
        if "line_number" in [f.name for f in quarantine_table.schema().fields]:
            lines = set(quarantine_table.to_pyarrow_table(columns=["line_number"]).column(0).to_pylist())
            wanted = set(plan["expected_lines"])
            checks.append(
                (
                    "quarantined lines that were not corrupted / corrupted lines not quarantined",
                    "0 / 0",
                    f"{len(lines - wanted)} / {len(wanted - lines)}",
                )
            )
    raw_table = _delta_table(raw, mlops_home, "raw_customers")
    if raw_table is not None:
        checks.append(("rows in the raw Delta table = rows loaded", loaded, raw_table.count()))
    return [
        {"check": name, "expected": want, "observed": got, "ok": got is not None and got == want}
        for name, want, got in checks
    ]


# --- report ----------------------------------------------------------------------------------


def _machine() -> dict:
    mem_kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    try:
        java = subprocess.run(["java", "-version"], capture_output=True, text=True)
        java_version = (java.stderr or java.stdout).splitlines()[0]
    except (OSError, IndexError):
        java_version = "java not found"
    mounts = [line.split() for line in Path("/proc/mounts").read_text().splitlines()]
    tmp_fs = max((m for m in mounts if "/tmp/".startswith(m[1].rstrip("/") + "/")), key=lambda m: len(m[1]))[
        2
    ]
    if tmp_fs == "tmpfs":
        _log("warning: /tmp is a tmpfs: the files and tables of large sizes will take RAM")
    return {
        "cores": os.cpu_count(),
        "ram_gib": round(mem_kib / 2**20, 1),
        "python": platform.python_version(),
        "java": java_version,
        "arch": platform.machine(),
        "tmp_filesystem": tmp_fs,
        "tmp_free_gb": round(shutil.disk_usage("/tmp").free / 1e9, 1),
    }


def _goals(sizes: dict[int, dict], bad: dict | None) -> list[dict]:
    """Issue 11's goals: each met, missed or not measured (a size that was not run)."""

    def measure(rows: int, value_of, shown, ok) -> tuple[str, str]:
        size = sizes.get(rows)
        if size is None:
            return f"not measured (needs --rows {rows})", "not measured"
        if "error" in size:  # what was measured still shows, but a failed run meets no goal
            return size["error"] + (
                f" (measured: {shown(value_of(size))})" if "run" in size else ""
            ), "missed"
        value = value_of(size)
        return shown(value), "met" if ok(value) else "missed"

    def goal(name: str, measured_verdict: tuple[str, str]) -> dict:
        return {"goal": name, "measured": measured_verdict[0], "verdict": measured_verdict[1]}

    def seconds(size: dict) -> float:
        return size["run"]["seconds"]

    one, ten = sizes.get(1_000_000), sizes.get(10_000_000)
    if one is None or ten is None:
        ratio = ("not measured (needs --rows 1000000 10000000)", "not measured")
    elif "error" in one or "error" in ten:
        ratio = ("a run failed", "missed")
    else:
        ratio = (
            f"{seconds(ten) / seconds(one):.2f}",
            "met" if seconds(ten) / seconds(one) <= 10 else "missed",
        )
    goals = [
        goal(
            "1,000,000 rows, whole lifecycle <= 90 s",
            measure(1_000_000, seconds, lambda s: f"{s:.1f} s", lambda s: s <= 90),
        ),
        goal(
            "10,000,000 rows, whole lifecycle <= 10 min",
            measure(10_000_000, seconds, lambda s: f"{s:.1f} s = {s / 60:.1f} min", lambda s: s <= 600),
        ),
        goal("time(10M) / time(1M) <= 10", ratio),
        goal(
            "peak RSS of the Dagster run process <= 3 GB at 10M rows",
            measure(10_000_000, lambda size: size["run"]["usage"]["run_process"], _gb, lambda b: b <= 3e9),
        ),
    ]
    name = "bad input at scale (1M rows, 1% bad): exactly those quarantined, loaded + quarantined = read"
    if bad is None:
        goals.append(goal(name, ("not measured (needs --bad-rows 1000000)", "not measured")))
    else:
        checks = bad.get("checks", [])
        ok = "error" not in bad and bool(checks) and all(c["ok"] for c in checks)
        measured = f"at {bad['rows']:,} rows: {sum(c['ok'] for c in checks)}/{len(checks)} checks pass"
        measured += f"; {bad['error']}" if "error" in bad else ""
        if bad["rows"] != 1_000_000:  # shown, but the goal is about 1M rows
            goals.append(goal(name, (measured, "not measured")))
        else:
            goals.append(goal(name, (measured, "met" if ok else "missed")))
    return goals


def _number(value) -> str:
    return f"{value:,}" if isinstance(value, int) else "-" if value is None else str(value)


def _gb(value: int) -> str:
    return f"{value / 1e9:.2f} GB"


def _rss(value: int) -> str:
    return _gb(value) if value else "none seen"


def _process_table(usage: dict) -> str:
    largest = f" (largest: `{usage['other_children_largest']}`)" if usage["other_children_largest"] else ""
    cpu = usage.get("cpu", {})

    def row(name: str, rss: int, kind: str) -> str:
        used = cpu.get(kind)
        figures = (
            f"{used['user']:.1f} | {used['kernel']:.1f} | {used['minor_faults']:,}" if used else "- | - | -"
        )
        return f"| {name} | {_rss(rss)} | {figures} |"

    machine = usage.get("machine_cpu")
    machine_line = (
        f"\n\nThe whole machine meanwhile ({os.cpu_count()} cores): {machine['user']:.1f} CPU-s user, "
        f"{machine['kernel']:.1f} kernel, {machine['idle']:.1f} idle, {machine['steal']:.1f} stolen."
        if machine
        else ""
    )
    return "\n".join(
        [
            "| process | peak RSS | CPU user (s) | CPU kernel (s) | minor page faults |",
            "|---|---:|---:|---:|---:|",
            row("Dagster run process (VmHWM)", usage["run_process"], "run_process"),
            row("Spark JVM (VmHWM)", usage["spark_jvm"], "spark_jvm"),
            row(
                f"PySpark Python workers (peak of their sum; {usage['pyspark_worker_processes']} processes seen)",
                usage["pyspark_workers_sum"],
                "pyspark_workers",
            ),
            row("serving gateway started by the run (VmHWM)", usage["serving_gateway"], "serving_gateway"),
            row(f"other children, peak of their sum{largest}", usage["other_children_sum"], "other_children"),
            row(
                f"whole process tree (peak of the sum, polled every {POLL_SECONDS} s)",
                usage["process_tree_sum"],
                "tree",
            ),
        ]
    ) + (
        "\n\nSums count pages that forked processes share (PySpark workers fork from one daemon) once per process. "
        "CPU and faults are each process's own counters at its last poll." + machine_line
    )


def _size_markdown(size: dict) -> str:
    rows, gen = size["rows"], size["generate"]
    out = [
        f"## {rows:,} rows",
        "",
        f"Generating the file: {gen['seconds']:.1f} s, peak RSS {_gb(gen['usage']['run_process'])} "
        f"(not part of the lifecycle time).",
    ]
    if "run" not in size:
        return "\n".join(out + [f"**{size['error']}**: see {gen['log']}", "```", _tail(gen["log"]), "```"])
    run, record = size["run"], size.get("dagster_run")
    wall = run["seconds"]
    status = "SUCCESS" if run["returncode"] == 0 else f"FAILURE (exit {run['returncode']})"
    out.append(
        f"`mlops run`: **{status} in {wall:.1f} s**"
        + (
            f" (Dagster run {record['run_id'][:8]}, {record['status']}, {record['seconds']:.1f} s from its first to its last event)"
            if record
            else ""
        )
        + f". Log: {run['log']}"
    )
    if run["returncode"] != 0:
        out += ["", "Last 40 lines of the log:", "```", _tail(run["log"]), "```"]
    if record:
        out += [
            "",
            "Steps run at once: a stage's seconds are those in which any of its steps ran, so stages "
            "overlap, and the steps' own seconds add up to more.",
            "",
            "| stage | seconds | share of the run | steps (seconds) |",
            "|---|---:|---:|---|",
        ]
        for stage in size["stages"]:
            steps = ", ".join(
                f"{s['step']} {s['seconds']:.1f}" + ("" if s["status"] == "success" else f" ({s['status']})")
                for s in stage["steps"]
            )
            out.append(
                f"| {stage['stage']} | {stage['seconds']:.1f} | {stage['seconds'] / wall:.1%} | {steps} |"
            )
        in_steps = record["seconds_in_steps"]
        out.append(
            f"| Dagster run outside steps (run start, resources, hooks) | {record['seconds'] - in_steps:.1f} | "
            f"{(record['seconds'] - in_steps) / wall:.1%} | |"
        )
        out.append(
            f"| outside the Dagster run (interpreter start, imports, summary) | {wall - record['seconds']:.1f} | "
            f"{(wall - record['seconds']) / wall:.1%} | |"
        )
        out.append(f"| **whole `mlops run` process** | **{wall:.1f}** | 100% | |")
        counts = [
            f"{asset} {meta['dagster/row_count']:,}"
            for asset, meta in record["materialized"].items()
            if isinstance(meta.get("dagster/row_count"), int)
        ]
        out += ["", "Rows written (`dagster/row_count`): " + (", ".join(counts) or "none recorded") + "."]
        failed = [s for stage in size["stages"] for s in stage["steps"] if s["status"] != "success"]
        out += [f"- step `{s['step']}` {s['status']}: {s.get('error', '')}" for s in failed]
    out += ["", _process_table(run["usage"])]
    if "outcomes" in size:
        o = size["outcomes"]
        steps = ", ".join(f"{step} {seconds:.1f}" for step, seconds in o["steps"].items())
        out += [
            "",
            f"Outcomes (`--outcomes`): {rows:,} generated in {o['generate_seconds']:.1f} s; the monitoring job "
            f"{o['run']['seconds']:.1f} s (steps, seconds: {steps}); run process peak RSS "
            f"{_rss(o['run']['usage']['run_process'])}; {o['labelled_predictions']} labelled predictions: "
            f"{o['verdict']}. Log: {o['run']['log']}",
        ]
    if size.get("directory"):
        out += ["", f"Kept: {size['directory']}"]
    return "\n".join(out)


def _bad_markdown(bad: dict) -> str:
    out = [f"## Bad input at scale: {bad['rows']:,} rows", ""]
    if "ingest" not in bad:
        return "\n".join(
            out
            + [
                f"**{bad['error']}**: see {bad['generate']['log']}",
                "```",
                _tail(bad["generate"]["log"]),
                "```",
            ]
        )
    c, ingest = bad["corrupted"], bad["ingest"]
    out.append(
        f"{bad['file']}: {bad['rows_in_file']:,} rows, of which {c['wrong_type']:,} with a wrong type, "
        f"{c['out_of_range']:,} out of range and {c['duplicate_key_rows']:,} sharing their `{KEY}` in pairs "
        f"(seed {BAD_SEED}; {c['preexisting_duplicate_rows']} rows already shared a key); "
        f"expected quarantined: **{bad['expected_quarantined']:,}**. Corrupting took {bad['corrupt_seconds']:.1f} s."
    )
    status = "SUCCESS" if ingest["returncode"] == 0 else f"FAILURE (exit {ingest['returncode']})"
    rate = ""
    if bad.get("ingest_step_seconds"):
        rate = (
            f"; the ingestion step {bad['ingest_step_seconds']:.1f} s = "
            f"**{bad['rows_in_file'] / bad['ingest_step_seconds']:,.0f} rows/s**"
        )
    out += [
        "",
        f"Ingestion only (`dagster asset materialize --select {INGESTION_ASSETS}`): {status} in "
        f"{ingest['seconds']:.1f} s ({bad['rows_in_file'] / ingest['seconds']:,.0f} rows/s for the whole process)"
        f"{rate}. Peak RSS: the process {_rss(ingest['usage']['run_process'])}, its Spark JVM "
        f"{_rss(ingest['usage']['spark_jvm'])}, PySpark workers {_rss(ingest['usage']['pyspark_workers_sum'])}. "
        f"Log: {ingest['log']}",
    ]
    for step in bad.get("failed_steps", []):
        out.append(f"- step `{step['step']}` failed: {step['error']}")
    if "error" in bad:
        out += ["", f"**{bad['error']}**. Last 40 lines of the log:", "```", _tail(ingest["log"]), "```"]
    if bad.get("checks"):
        out += ["", "| check | expected | observed | |", "|---|---:|---:|---|"]
        for check in bad["checks"]:
            out.append(
                f"| {check['check']} | {_number(check['expected'])} | {_number(check['observed'])} | "
                f"{'ok' if check['ok'] else '**wrong**'} |"
            )
    if bad.get("directory"):
        out += ["", f"Kept: {bad['directory']}"]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows",
        type=int,
        nargs="*",
        default=[1_000_000, 10_000_000],
        help="sizes of the lifecycle runs (default 1M and 10M; none: --bad-rows only)",
    )
    parser.add_argument(
        "--bad-rows", type=int, help="also check bad input at this size (1%% of rows made bad)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directories (paths on stderr)"
    )
    parser.add_argument(
        "--steps-at-once",
        type=int,
        metavar="N",
        help="max_concurrent_steps of every run (default: the project's)",
    )
    parser.add_argument(
        "--outcomes",
        action="store_true",
        help="after each lifecycle: outcomes for every customer, then the monitoring job (issue 13)",
    )
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)

    machine = _machine()
    if args.steps_at_once:
        SETTINGS["max_concurrent_steps"] = args.steps_at_once
    sizes = {rows: _lifecycle(rows, args.keep, args.outcomes) for rows in args.rows}
    bad = _bad_input(args.bad_rows, args.keep) if args.bad_rows else None
    goals = _goals(sizes, bad)
    result = {"machine": machine, "sizes": list(sizes.values()), "bad_input": bad, "goals": goals}
    (RESULTS / "scale.json").write_text(json.dumps(result, indent=2, default=str))

    sections = [_size_markdown(size) for size in sizes.values()]
    if bad:
        sections.append(_bad_markdown(bad))
    goal_rows = "\n".join(f"| {g['goal']} | {g['measured']} | {g['verdict']} |" for g in goals)
    sections.append(f"## Goals\n\n| goal | measured | verdict |\n|---|---|---|\n{goal_rows}")
    sections.append(
        f"machine: {machine['cores']} cores, {machine['ram_gib']} GiB RAM, {machine['arch']}, "
        f"Python {machine['python']}, {machine['java']}; /tmp on {machine['tmp_filesystem']}, "
        f"{machine['tmp_free_gb']} GB free. "
        f"Results: {RESULTS / 'scale.json'}"
    )
    print("\n\n".join(sections))
    failed = any("error" in s for s in sizes.values()) or (bad is not None and "error" in bad)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
