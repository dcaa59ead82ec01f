"""A landing folder on object storage (issue 14): `landing: s3://bucket/prefix`, against a real
S3-compatible server (moto's server mode, started by the tests on 127.0.0.1). Files of every format
are listed, fetched and ingested like local ones, each version once; the sensor lists the bucket;
an unreachable store fails naming it; no credential appears in any event or file."""

from __future__ import annotations

import gzip
import json
import secrets
from pathlib import Path

import pytest
from dagster import build_sensor_context

from mlops_dagster.resources.landing import LocalLandingVolume

from .project import project_at
from .support.subscribers import SUBSCRIBERS, subscribers

pytestmark = pytest.mark.integration

INGESTION = ["raw_subscribers", "raw_subscribers_quarantine"]


@pytest.fixture
def bucket(s3_server, monkeypatch):
    import boto3

    secret = secrets.token_hex(16)
    for name, value in {
        "AWS_ACCESS_KEY_ID": "mlops-test",
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": s3_server,
    }.items():
        monkeypatch.setenv(name, value)
    name = f"landing-{secrets.token_hex(4)}"
    client = boto3.client("s3")
    client.create_bucket(Bucket=name)
    return name, client, secret


def _config(landing: str) -> dict:
    return {
        "name": "cancellation",
        **SUBSCRIBERS,
        "landing": landing,
        "dataset": {**SUBSCRIBERS["dataset"], "file_pattern": "subs_*"},
    }


def test_files_in_an_s3_bucket_are_ingested_once_per_version(tmp_path, bucket):
    name, client, secret = bucket
    prefix = f"s3://{name}/landing/cancellation"
    csv_rows = subscribers(100, seed=1)
    csv_rows.loc[3, "plan"] = "platinum"
    client.put_object(
        Bucket=name, Key="landing/cancellation/subs_a.csv", Body=csv_rows.to_csv(index=False).encode()
    )
    parquet = tmp_path / "b.parquet"
    subscribers(100, seed=2).to_parquet(parquet, index=False)
    client.put_object(Bucket=name, Key="landing/cancellation/subs_b.parquet", Body=parquet.read_bytes())
    lines = "\n".join(
        json.dumps(r) for r in subscribers(50, seed=3).replace({float("nan"): None}).to_dict("records")
    )
    client.put_object(
        Bucket=name, Key="landing/cancellation/subs_c.jsonl.gz", Body=gzip.compress(lines.encode())
    )
    client.put_object(Bucket=name, Key="landing/cancellation/other.csv", Body=b"not matched by the pattern\n")

    with project_at(tmp_path / "s3_landing", overrides=_config(prefix)) as project:
        result = project.run(selection=INGESTION)
        assert result.success, project.failures(result)
        raw = project.lakehouse.read(project.table("raw_subscribers"))
        assert len(raw) == 249
        assert sorted(set(raw["_source_file"])) == [
            f"{prefix}/subs_a.csv",
            f"{prefix}/subs_b.parquet",
            f"{prefix}/subs_c.jsonl.gz",
        ]
        [bad] = project.lakehouse.read(project.table("raw_subscribers_quarantine")).to_dict("records")
        assert bad["source_file"] == f"{prefix}/subs_a.csv" and bad["line_number"] == 5
        assert bad["reason"] == "plan: 'platinum' is not one of ['basic', 'plus', 'pro']"

        # The sensor lists the bucket: one run request per file, with the file's URI.
        sensor = project.defs.get_repository_def().get_sensor_def("cancellation_landing_file_sensor")
        tick = sensor.evaluate_tick(
            build_sensor_context(
                instance=project.instance, resources={"landing_volume": LocalLandingVolume()}
            )
        )
        assert tick.skip_message and "waiting for 3 file(s)" in tick.skip_message

        # Nothing new: nothing read. A new version of one object (new size): only it again.
        assert project.run(selection=INGESTION).success
        assert project.metadata("raw_subscribers")["files_ingested"] == 0
        fixed = csv_rows.assign(plan=csv_rows["plan"].replace("platinum", "pro"))
        client.put_object(
            Bucket=name,
            Key="landing/cancellation/subs_a.csv",
            Body=fixed.to_csv(index=False).encode() + b"\n",
        )
        assert project.run(selection=INGESTION).success
        meta = project.metadata("raw_subscribers")
        assert meta["files_ingested"] == 1 and "subs_a.csv" in meta["files"]
        assert len(project.lakehouse.read(project.table("raw_subscribers"))) == 250

        for run in project.instance.get_runs():
            for entry in project.instance.all_logs(run.run_id):
                assert secret not in str(entry)
        for path in Path(project.root).rglob("*"):
            assert not path.is_file() or secret.encode() not in path.read_bytes(), path


def test_an_unreachable_store_fails_naming_the_landing_folder(tmp_path, bucket, monkeypatch):
    from .project import free_port

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    prefix = f"s3://{bucket[0]}/landing/cancellation"
    with project_at(tmp_path / "s3_down", overrides=_config(prefix)) as project:
        result = project.run(selection=INGESTION)
        assert not result.success
        [failure] = project.failures(result)
        assert f"cannot list the landing folder {prefix}" in failure and "AWS_ENDPOINT_URL" in failure


def test_housekeeping_puts_a_landing_file_aside_in_a_bucket(bucket):
    from mlops_dagster.resources.landing import landing_files, put_aside

    name, client, _ = bucket
    folder = f"s3://{name}/landing/cancellation"
    for key in ("subs_a.csv", "subs_b.csv", "archive/2026-11-01/subs_a.csv"):
        client.put_object(Bucket=name, Key=f"landing/cancellation/{key}", Body=f"{key}\n".encode())

    moved = put_aside(folder, f"{folder}/subs_a.csv", "2026-11-01")
    # The archive already held a file of that name: the new one gets a numbered suffix, nothing is overwritten.
    assert moved == f"{folder}/archive/2026-11-01/subs_a-1.csv"
    assert (
        client.get_object(Bucket=name, Key="landing/cancellation/archive/2026-11-01/subs_a.csv")[
            "Body"
        ].read()
        == b"archive/2026-11-01/subs_a.csv\n"
    )
    assert (
        client.get_object(Bucket=name, Key="landing/cancellation/archive/2026-11-01/subs_a-1.csv")[
            "Body"
        ].read()
        == b"subs_a.csv\n"
    )
    assert put_aside(folder, f"{folder}/subs_b.csv", None) is None
    assert landing_files(folder, "subs_*") == []  # out of the listing ingestion reads
