"""A PostgreSQL table as a use case's source (issue 14), against a real server: rows past the
watermark read in batches, bad rows quarantined with the watermark they came with, a second run
reads only what is new, and a broken source fails naming it. The DSN (and its password) appears
nowhere: not in logs, events, metadata or any file the runs wrote."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from .project import project_at
from .support.subscribers import SUBSCRIBERS, subscribers

pytestmark = pytest.mark.integration

INGESTION = ["raw_subscribers", "raw_subscribers_quarantine"]
START = datetime(2026, 11, 1, tzinfo=UTC)


def _config(schema: str, **source) -> dict:
    return {
        "name": "cancellation",
        **SUBSCRIBERS,
        "dataset": {
            **SUBSCRIBERS["dataset"],
            "source": {
                "kind": "postgres",
                "table": f"{schema}.subscribers",
                "watermark": "updated_at",
                "batch_rows": 64,
                **source,
            },
        },
    }


def _insert(conn, schema: str, frame, first_second: int) -> datetime:
    """Rows with updated_at one second apart from START + first_second; returns the last one."""
    times = [START + timedelta(seconds=first_second + i) for i in range(len(frame))]
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO {schema}.subscribers VALUES (%s, %s, %s, %s, %s, %s)",
            [
                (r.subscriber_id, r.plan, r.months, None if r.spend != r.spend else r.spend, r.cancelled, t)
                for r, t in zip(frame.itertuples(), times)
            ],
        )
    return times[-1]


@pytest.fixture
def crm(postgres_dsn, monkeypatch):
    """A schema of its own on the session's server, with the source table; the DSN in the environment."""
    import psycopg

    schema = f"crm_{secrets.token_hex(4)}"
    monkeypatch.setenv("MLOPS_SOURCE_DSN", postgres_dsn)
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(
            f"CREATE TABLE {schema}.subscribers (subscriber_id text PRIMARY KEY, plan text, "
            "months double precision, spend numeric(10, 2), cancelled text, updated_at timestamptz NOT NULL)"
        )
        yield schema, conn


def _ingest(project):
    result = project.run(selection=INGESTION)
    assert result.success, project.failures(result)
    return project.metadata("raw_subscribers")


def test_a_postgres_table_is_read_past_its_watermark_in_batches(tmp_path, crm, postgres_dsn):
    import psycopg

    schema, conn = crm
    first = subscribers(300, seed=1)
    first.loc[10, "months"] = -1.0
    last = _insert(conn, schema, first, 0)
    with project_at(tmp_path / "pg_source", overrides=_config(schema)) as project:
        raw_table = project.table("raw_subscribers")
        read = _ingest(project)
        assert (read["read"], read["why"], read["rows_loaded"]) == ("every row", "first read", 299)
        assert read["watermark"] == last.isoformat() and read["source"] == f"postgres:{schema}.subscribers"
        [bad] = project.lakehouse.read(project.table("raw_subscribers_quarantine")).to_dict("records")
        assert bad["reason"] == "months: -1.0 is below the minimum 0"
        assert bad["source_file"] == f"postgres:{schema}.subscribers@updated_at={last.isoformat()}"
        raw = project.lakehouse.read(raw_table)
        assert raw["spend"].isna().sum() == first.drop(10)["spend"].isna().sum()  # numeric NULLs stay empty

        # 20 new rows and one changed row, later than the watermark: only they are read.
        _insert(conn, schema, subscribers(20, seed=2), 1000)
        changed_at = START + timedelta(seconds=2000)
        conn.execute(
            f"UPDATE {schema}.subscribers SET spend = 999, updated_at = %s WHERE subscriber_id = %s",
            (changed_at, first["subscriber_id"][0]),
        )
        read = _ingest(project)
        assert (read["read"], read["rows_loaded"]) == (f"rows with updated_at > {last.isoformat()}", 21)
        assert read["previous_watermark"] == last.isoformat() and read["watermark"] == changed_at.isoformat()
        raw = project.lakehouse.read(raw_table).set_index("subscriber_id")
        assert len(raw) == 319 and raw.loc[first["subscriber_id"][0], "spend"] == 999.0

        version = project.lakehouse.version(raw_table)
        read = _ingest(project)
        assert read["read"] == "nothing new" and project.lakehouse.version(raw_table) == version

        password = psycopg.conninfo.conninfo_to_dict(postgres_dsn)["password"]
        _assert_nowhere(project, password)


def test_a_broken_postgres_source_fails_naming_it_and_never_shows_the_dsn(
    tmp_path, crm, postgres_dsn, monkeypatch
):
    import psycopg

    schema, conn = crm
    _insert(conn, schema, subscribers(30, seed=3), 0)
    with project_at(tmp_path / "pg_broken", overrides=_config(schema)) as project:
        raw_table = project.table("raw_subscribers")
        _ingest(project)
        version = project.lakehouse.version(raw_table)

        def failure(project) -> str:
            result = project.run(selection=INGESTION)
            assert not result.success
            [message] = project.failures(result)
            assert project.lakehouse.version(raw_table) == version  # nothing touched
            return message

        monkeypatch.delenv("MLOPS_SOURCE_DSN")
        assert "$MLOPS_SOURCE_DSN (dataset.source.dsn_env), which is not set" in failure(project)

        wrong = psycopg.conninfo.make_conninfo(
            postgres_dsn, password="not-the-password-" + secrets.token_hex(4)
        )
        monkeypatch.setenv("MLOPS_SOURCE_DSN", wrong)
        message = failure(project)
        assert (
            f"postgres:{schema}.subscribers: cannot connect" in message
            and "password authentication failed" in message
        )

        monkeypatch.setenv("MLOPS_SOURCE_DSN", postgres_dsn)
        missing = project.rebuild(_config(schema, table=f"{schema}.nobody"))
        assert f'the query failed: relation "{schema}.nobody" does not exist' in failure(missing)
        no_watermark = project.rebuild(_config(schema, watermark="changed_at"))
        assert 'column "changed_at" does not exist' in failure(no_watermark)

        for secret in (
            psycopg.conninfo.conninfo_to_dict(postgres_dsn)["password"],
            psycopg.conninfo.conninfo_to_dict(wrong)["password"],
        ):
            _assert_nowhere(project, secret)


def _assert_nowhere(project, secret: str) -> None:
    """``secret`` is in no event of any run (messages, metadata, errors) and no file under the project."""
    for run in project.instance.get_runs():
        for entry in project.instance.all_logs(run.run_id):
            assert secret not in str(entry), entry
    for path in Path(project.root).rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
