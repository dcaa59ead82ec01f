"""The data a use case reads: its dataset (landing files or a source table, and their contract),
its model's features and the feature store they are registered in."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from .base import SettingsModel


class ColumnRule(SettingsModel):
    type: Literal["string", "double", "long", "boolean", "timestamp"]
    nullable: bool = False
    allowed: list[Any] | None = None
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _timestamps_are_only_parsed(self) -> "ColumnRule":
        if self.type == "timestamp" and (self.allowed is not None or self.min is not None or self.max is not None):
            raise ValueError("a timestamp column takes no allowed, min or max (only nullable)")
        return self


class CsvOptions(SettingsModel):
    """How a CSV landing file is written (like Auto Loader's CSV options)."""

    delimiter: str = Field(",", min_length=1, max_length=1)
    quote: str = Field('"', min_length=1, max_length=1)
    # Any Python codec name (utf-8, latin-1, cp1252, utf-16, ...). Other than UTF-8, each file is
    # decoded as it is read (streamed, never whole in memory); a byte the codec refuses refuses the
    # file, naming its line.
    encoding: str = "utf-8"
    # Without a header, the fields of a row are the contract's columns (`columns`) in their order.
    header: bool = True

    @model_validator(mode="after")
    def _known_encoding(self) -> "CsvOptions":
        import codecs

        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise ValueError(f"csv.encoding {self.encoding!r} is not a codec Python knows "
                             "(e.g. utf-8, latin-1, cp1252, utf-16)") from None
        if self.delimiter == self.quote or "\n" in (self.delimiter, self.quote):
            raise ValueError("csv.delimiter and csv.quote must be two different characters, neither a line break")
        return self


class LandingFormat(SettingsModel):
    """Which landing files a source takes and how they are read. The format of a file follows its
    extension (.csv, .csv.gz, .parquet, .json, .jsonl, .json.gz ...) unless `format` names one, so
    one `file_pattern` may match several formats."""

    file_pattern: str = "*.csv"
    format: Literal["auto", "csv", "parquet", "json"] = "auto"
    csv: CsvOptions = CsvOptions()


class DeltaSourceSettings(SettingsModel):
    """Another team's Delta table feeding the raw table instead of landing files: each run reads only
    what changed since the version it read last (recorded), the whole table when that cannot be
    told (the table was overwritten, restored or rows were deleted since)."""

    kind: Literal["delta"]
    # catalog.schema.table (Unity Catalog on Databricks; locally <root>/<catalog>/<schema>/<table>),
    # or the path of a Delta table.
    table: str = Field(min_length=1)


class PostgresSourceSettings(SettingsModel):
    """A PostgreSQL table or query feeding the raw table: each run reads the rows whose `watermark`
    is greater than the greatest one read last (recorded), `batch_rows` at a time. The watermark
    must grow with every new or changed row (a sequence, or a commit time set by the writer)."""

    kind: Literal["postgres"]
    # The environment variable holding the DSN (postgresql://user:password@host:5432/db): the
    # password never sits in config.
    dsn_env: str = "MLOPS_SOURCE_DSN"
    table: str | None = None        # schema.table, or:
    query: str | None = None        # any SELECT (read as a subquery)
    watermark: str = Field(min_length=1)
    batch_rows: int = Field(50_000, ge=1)

    @model_validator(mode="after")
    def _table_or_query(self) -> "PostgresSourceSettings":
        if (self.table is None) == (self.query is None):
            raise ValueError("a postgres source names exactly one of `table` or `query`")
        return self


class DatasetSettings(LandingFormat):
    name: str
    # Where rows come from: landing files in the use case's landing folder (unset), a Delta table
    # or a PostgreSQL table or query.
    source: DeltaSourceSettings | PostgresSourceSettings | None = Field(None, discriminator="kind")
    key: str
    label: str
    positive_label: Any = None  # classification: the label's positive value (its score's class)
    columns: dict[str, ColumnRule]

    @model_validator(mode="after")
    def _key_and_label_are_columns(self) -> "DatasetSettings":
        for role, column in (("key", self.key), ("label", self.label)):
            if column not in self.columns:
                raise ValueError(f"dataset.{role} {column!r} is not one of dataset.columns")
        return self


class FeatureSettings(SettingsModel):
    categorical: list[str]
    numerical: list[str]
    derived: dict[str, str] = Field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        """Model inputs in a stable order: categorical, numerical, then new derived columns."""
        ordered = [*self.categorical, *self.numerical, *self.derived]
        return list(dict.fromkeys(ordered))

    @property
    def numeric_columns(self) -> list[str]:
        return [c for c in self.columns if c not in self.categorical]


class FeatureSpec(SettingsModel):
    description: str = ""
    dtype: Literal["string", "double", "long", "boolean", "timestamp"] | None = None


class FeatureTableSettings(SettingsModel):
    """A feature table in the registry: what identifies a row, who owns it, what each feature means."""

    keys: list[str] = Field(min_length=1)   # entity keys (the primary key without the timestamp)
    timestamp_key: str | None = None        # with it, the table keeps history: one row per keys + time
    description: str
    owner: str
    tags: dict[str, str] = Field(default_factory=dict)
    # Feature name -> description and dtype. Replaced as a whole by an upper config layer.
    columns: dict[str, FeatureSpec] = Field(default_factory=dict)
    online: bool = False                    # publish the latest values per key to the online store


class FeatureLookupSettings(SettingsModel):
    """Like Databricks' ``FeatureLookup``: which features to join to the labels, by which columns."""

    table: str                                # a feature table of ``feature_store.tables``
    lookup_key: list[str] = Field(min_length=1)  # label columns matched to the table's keys, in order
    timestamp_lookup_key: str | None = None   # label event time: features as of then (point in time)
    feature_names: list[str] | None = None    # default: every feature of the table


class OnlineStoreSettings(SettingsModel):
    # sqlite: embedded, a file under `root` (or `path`); postgres: a server named by the DSN in the
    # environment variable `dsn_env` (the DSN holds the password, so it never sits in config).
    kind: Literal["sqlite", "postgres"] = "sqlite"
    path: str | None = None
    dsn_env: str = "MLOPS_ONLINE_STORE_DSN"


class FeatureStoreSettings(SettingsModel):
    tables: dict[str, FeatureTableSettings] = Field(default_factory=dict)
    training_lookups: list[FeatureLookupSettings] = Field(default_factory=list)
    online_store: OnlineStoreSettings = OnlineStoreSettings()

    @model_validator(mode="after")
    def _lookups_name_declared_features(self) -> "FeatureStoreSettings":
        for i, lookup in enumerate(self.training_lookups):
            table = self.tables.get(lookup.table)
            where = f"feature_store.training_lookups[{i}]"
            if table is None:
                raise ValueError(f"{where}.table {lookup.table!r} is not declared in feature_store.tables "
                                 f"(declared: {sorted(self.tables)})")
            if len(lookup.lookup_key) != len(table.keys):
                raise ValueError(f"{where}.lookup_key {lookup.lookup_key} must name one label column per key "
                                 f"of {lookup.table} {table.keys}")
            if lookup.timestamp_lookup_key and not table.timestamp_key:
                raise ValueError(f"{where} has a timestamp_lookup_key but {lookup.table} has no timestamp_key: "
                                 "a table without history has no point in time to look up")
            unknown = [f for f in lookup.feature_names or [] if f not in table.columns]
            if unknown:
                raise ValueError(f"{where}.feature_names {unknown} are not features of {lookup.table} "
                                 f"(declared: {sorted(table.columns)})")
        return self


