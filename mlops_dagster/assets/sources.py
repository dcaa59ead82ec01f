"""What every ingestion asset shares, whatever the rows come from (landing files, a Delta table, a
database): the source's description, the two assets (loaded rows, refused rows) and how checked
rows are written into them."""

from dataclasses import dataclass

from dagster import AssetSpec

from ..resources.lakehouse import Lakehouse
from ..settings import LandingFormat, Settings


@dataclass(frozen=True)
class Source:
    """One kind of incoming rows: where they come from, their contract and the tables they are loaded into."""

    what: str  # for messages: "customers", "ground truth"
    folder: str  # the landing folder, or the source table or database
    files: LandingFormat  # which files (pattern), their formats and CSV dialect
    rules: dict
    key: str
    raw: str  # asset (and table) name of the loaded rows
    quarantine: str  # asset (and table) name of the refused rows
    group: str
    raw_description: str
    required: bool  # no files and no table yet is an error (else: nothing has arrived yet)


def specs(settings: Settings, source: Source) -> list[AssetSpec]:
    """The loaded rows and the refused ones, whatever the source."""
    names = settings.names
    quarantine_table = settings.table(source.quarantine)
    return [
        AssetSpec(
            names.key(source.raw),
            group_name=source.group,
            kinds={"spark", "delta"},
            description=source.raw_description,
            metadata={"dagster/table_name": settings.table(source.raw)},
        ),
        AssetSpec(
            names.key(source.quarantine),
            group_name=source.group,
            kinds={"spark", "delta"},
            description=(
                f"Rows that broke the {source.what} contract (missing or unknown columns, unparsable "
                f"values, values out of range, duplicated `{source.key}`, empty files), appended to "
                f"`{quarantine_table}` with file (or source table and version), line, the original "
                "record and every reason. Nothing is dropped silently."
            ),
            metadata={"dagster/table_name": quarantine_table},
        ),
    ]


def load_checked(
    lakehouse: Lakehouse, settings: Settings, source: Source, batch, commit: dict, origin: str, read: str
):
    """Valid rows merged into the raw table on the key (created empty when every row was refused),
    refused rows appended to the quarantine table. Returns both tables' infos (None: not written).

    ``read`` names what was read (the files with their sizes and times, the source version): a run
    that reads it again after a crash merges the same rows again (the same table) and appends its
    refused rows once (the append's Delta transaction identifier is made from ``read``)."""
    from ..ml.landing_tasks import QUARANTINE_SCHEMA, valid_schema

    raw_table, quarantine_table = settings.table(source.raw), settings.table(source.quarantine)
    raw_info = quarantine_info = None
    if batch.valid_files:
        raw_info = lakehouse.merge_files(
            raw_table,
            batch.valid_files,
            [source.key],
            commit_info=commit,
            properties={"primary_key": source.key},
            description=f"{source.what.capitalize()} from {origin}; key {source.key}.",
        )
    elif not lakehouse.exists(raw_table):  # every row refused: an empty table for the next stages
        raw_info = lakehouse.write(
            raw_table,
            valid_schema(source.rules).empty_table(),
            "append",
            commit_info=commit,
            properties={"primary_key": source.key},
        )
    description = f"Rows refused by the {source.what} contract, with reasons."
    if batch.quarantine_files:
        quarantine_info = lakehouse.write_files(
            quarantine_table,
            batch.quarantine_files,
            "append",
            commit_info=commit,
            description=description,
            once=once_key("quarantine", source.quarantine, read),
        )
    elif not lakehouse.exists(quarantine_table):  # an empty table, so its checks can read it
        quarantine_info = lakehouse.write(
            quarantine_table,
            QUARANTINE_SCHEMA.empty_table(),
            "append",
            commit_info=commit,
            description=description,
        )
    return raw_info, quarantine_info


def once_key(kind: str, table: str, read: str) -> str:
    """The Delta transaction identifier of an append that must happen once for what was read."""
    import hashlib

    return f"mlops_dagster/{kind}/{table}/{hashlib.sha256(read.encode()).hexdigest()[:24]}"
