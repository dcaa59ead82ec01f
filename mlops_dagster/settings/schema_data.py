"""The data a use case reads: its dataset (landing files or a source table, and their contract),
its model's features and the feature store they are registered in."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from .base import SettingsModel


class ColumnRule(SettingsModel):
    """One column of the landing file contract: a row breaking a rule goes to quarantine, with the reason."""

    type: Literal["string", "double", "long", "boolean", "timestamp"]
    """The column's type; a timestamp is ISO 8601 text, UTC when it names no zone."""
    nullable: bool = False
    """Whether the column may be empty."""
    allowed: list[Any] | None = None
    """The only values the column may hold (unset: any value of its type)."""
    min: float | None = None
    """The smallest value a number may have (unset: no lower bound)."""
    max: float | None = None
    """The largest value a number may have (unset: no upper bound)."""

    @model_validator(mode="after")
    def _timestamps_are_only_parsed(self) -> ColumnRule:
        if self.type == "timestamp" and (
            self.allowed is not None or self.min is not None or self.max is not None
        ):
            raise ValueError("a timestamp column takes no allowed, min or max (only nullable)")
        return self


class CsvOptions(SettingsModel):
    """How a CSV landing file is written (like Auto Loader's CSV options)."""

    delimiter: str = Field(",", min_length=1, max_length=1)
    """The character between two fields."""
    quote: str = Field('"', min_length=1, max_length=1)
    """The character around a field that holds the delimiter, a quote or a line break."""
    encoding: str = "utf-8"
    """Any Python codec name (utf-8, latin-1, cp1252, utf-16, ...). Other than UTF-8, each file is
    decoded as it is read (streamed, never whole in memory); a byte the codec refuses refuses the
    file, naming its line."""
    header: bool = True
    """Whether the first line names the fields; without one, the fields of a row are the
    contract's columns (`columns`) in their order."""

    @model_validator(mode="after")
    def _known_encoding(self) -> CsvOptions:
        import codecs

        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise ValueError(
                f"csv.encoding {self.encoding!r} is not a codec Python knows "
                "(e.g. utf-8, latin-1, cp1252, utf-16)"
            ) from None
        if self.delimiter == self.quote or "\n" in (self.delimiter, self.quote):
            raise ValueError(
                "csv.delimiter and csv.quote must be two different characters, neither a line break"
            )
        return self


class LandingFormat(SettingsModel):
    """Which landing files a source takes and how they are read. The format of a file follows its
    extension (.csv, .csv.gz, .parquet, .json, .jsonl, .json.gz ...) unless `format` names one, so
    one `file_pattern` may match several formats."""

    file_pattern: str = "*.csv"
    """Which files of the landing folder are read (a glob on the file name)."""
    format: Literal["auto", "csv", "parquet", "json"] = "auto"
    """The files' format; `auto` follows each file's extension."""
    csv: CsvOptions = CsvOptions()
    """How CSV files are written."""


class DeltaSourceSettings(SettingsModel):
    """Another team's Delta table feeding the raw table instead of landing files: each run reads only
    what changed since the version it read last (recorded), the whole table when that cannot be
    told (the table was overwritten, restored or rows were deleted since)."""

    kind: Literal["delta"]
    """A Delta table."""
    table: str = Field(min_length=1)
    """`catalog.schema.table` (Unity Catalog on Databricks; locally `<root>/<catalog>/<schema>/<table>`),
    or the path of a Delta table."""


class PostgresSourceSettings(SettingsModel):
    """A PostgreSQL table or query feeding the raw table: each run reads the rows whose `watermark`
    is greater than the greatest one read last (recorded), `batch_rows` at a time. The watermark
    must grow with every new or changed row (a sequence, or a commit time set by the writer)."""

    kind: Literal["postgres"]
    """A PostgreSQL table or query."""
    dsn_env: str = "MLOPS_SOURCE_DSN"
    """The environment variable holding the DSN (postgresql://user:password@host:5432/db): the
    password never sits in config."""
    table: str | None = None
    """The table to read (schema.table); exactly one of `table` and `query` is set."""
    query: str | None = None
    """Any SELECT to read instead of a table (read as a subquery)."""
    watermark: str = Field(min_length=1)
    """The column that grows with every new or changed row; a run reads the rows above the last one read."""
    batch_rows: int = Field(50_000, ge=1)
    """How many rows are fetched at a time."""

    @model_validator(mode="after")
    def _table_or_query(self) -> PostgresSourceSettings:
        if (self.table is None) == (self.query is None):
            raise ValueError("a postgres source names exactly one of `table` or `query`")
        return self


class DatasetSettings(LandingFormat):
    """The use case's raw data: where its rows come from, the contract they must meet, the key and the label."""

    name: str
    """Names the raw table (`raw_<name>`) and its quarantine table."""
    source: DeltaSourceSettings | PostgresSourceSettings | None = Field(None, discriminator="kind")
    """Where rows come from: landing files in the use case's landing folder (unset), a Delta table
    or a PostgreSQL table or query."""
    key: str
    """The entity key column: unique and never empty."""
    label: str
    """The column the model learns to predict."""
    positive_label: Any = None
    """Classification: the label's positive value (the class whose probability is scored)."""
    columns: dict[str, ColumnRule]
    """The landing file contract, one rule per column; replaced as a whole by an upper layer."""

    @model_validator(mode="after")
    def _key_and_label_are_columns(self) -> DatasetSettings:
        for role, column in (("key", self.key), ("label", self.label)):
            if column not in self.columns:
                raise ValueError(f"dataset.{role} {column!r} is not one of dataset.columns")
        return self


class FeatureSettings(SettingsModel):
    """The model's inputs, computed with Spark from the raw table."""

    categorical: list[str]
    """Columns the model treats as categories (written as text)."""
    numerical: list[str]
    """Columns the model treats as numbers (written as doubles)."""
    derived: dict[str, str] = Field(default_factory=dict)
    """New or replaced columns, each a Spark SQL expression over raw columns; replaced as a whole by an upper layer."""

    @property
    def columns(self) -> list[str]:
        """Model inputs in a stable order: categorical, numerical, then new derived columns."""
        ordered = [*self.categorical, *self.numerical, *self.derived]
        return list(dict.fromkeys(ordered))

    @property
    def numeric_columns(self) -> list[str]:
        return [c for c in self.columns if c not in self.categorical]


class FeatureSpec(SettingsModel):
    """What one feature of a registered table means."""

    description: str = ""
    """What the feature means, stored as the column's comment."""
    dtype: Literal["string", "double", "long", "boolean", "timestamp"] | None = None
    """The feature's type, checked against how the features asset writes it (unset: not checked)."""


class FeatureTableSettings(SettingsModel):
    """A feature table in the registry: what identifies a row, who owns it, what each feature means."""

    keys: list[str] = Field(min_length=1)
    """The entity keys (the primary key without the timestamp)."""
    timestamp_key: str | None = None
    """With it, the table keeps history: one row per keys and time."""
    description: str
    """What the table holds, stored as the table's comment."""
    owner: str
    """Who answers for the table."""
    tags: dict[str, str] = Field(default_factory=dict)
    """Free-form labels stored with the table (domain, entity, pii, ...)."""
    columns: dict[str, FeatureSpec] = Field(default_factory=dict)
    """Feature name to its description and type; replaced as a whole by an upper layer."""
    online: bool = False
    """Whether the latest values per key are published to the online store."""


class FeatureLookupSettings(SettingsModel):
    """Like Databricks' ``FeatureLookup``: which features to join to the labels, by which columns."""

    table: str
    """A feature table of `feature_store.tables`."""
    lookup_key: list[str] = Field(min_length=1)
    """The label columns matched to the table's keys, in order."""
    timestamp_lookup_key: str | None = None
    """The label's event time: features are looked up as of then (point in time)."""
    feature_names: list[str] | None = None
    """Which features to join (unset: every feature of the table)."""


class OnlineStoreSettings(SettingsModel):
    """Where the latest feature values are served from at low latency."""

    kind: Literal["sqlite", "postgres", "lakebase"] = "sqlite"
    """sqlite: embedded, a file under `root` (or `path`); postgres: a server named by the DSN in the
    environment variable `dsn_env`; lakebase: the Databricks Lakebase database instance `instance`,
    its credentials from the workspace (Databricks targets)."""
    path: str | None = None
    """The SQLite file (unset: `online/features.db` under `root`)."""
    dsn_env: str = "MLOPS_ONLINE_STORE_DSN"
    """The environment variable holding the PostgreSQL DSN (it holds the password, so it never sits in config)."""
    instance: str | None = None
    """The Lakebase database instance (kind lakebase); `mlops bootstrap` creates it when missing."""
    capacity: str = "CU_1"
    """The capacity `mlops bootstrap` creates the Lakebase instance with (CU_1, CU_2, CU_4 or CU_8)."""
    database: str = "databricks_postgres"
    """The PostgreSQL database of the Lakebase instance that holds the online tables."""
    port: int = Field(5432, ge=1, le=65535)
    """The Lakebase instance's PostgreSQL port."""
    sslmode: Literal["require", "verify-ca", "verify-full", "prefer"] = "require"
    """TLS to the Lakebase instance (libpq's sslmode); Lakebase accepts TLS connections only."""

    @model_validator(mode="after")
    def _lakebase_names_its_instance(self) -> OnlineStoreSettings:
        if self.kind == "lakebase" and not self.instance:
            raise ValueError(
                "feature_store.online_store.kind lakebase needs feature_store.online_store.instance: "
                "the name of the Lakebase database instance (mlops bootstrap creates it)"
            )
        return self


class FeatureStoreSettings(SettingsModel):
    """The feature registry, how training looks features up, and the online store."""

    tables: dict[str, FeatureTableSettings] = Field(default_factory=dict)
    """The registered feature tables by name; `{name}_features` is the one the features asset writes."""
    training_lookups: list[FeatureLookupSettings] = Field(default_factory=list)
    """How training joins features to labels (unset: the model's features from `{name}_features` by
    `dataset.key`, as of each label's ingestion time)."""
    online_store: OnlineStoreSettings = OnlineStoreSettings()
    """Where online features are published."""

    @model_validator(mode="after")
    def _lookups_name_declared_features(self) -> FeatureStoreSettings:
        for i, lookup in enumerate(self.training_lookups):
            table = self.tables.get(lookup.table)
            where = f"feature_store.training_lookups[{i}]"
            if table is None:
                raise ValueError(
                    f"{where}.table {lookup.table!r} is not declared in feature_store.tables "
                    f"(declared: {sorted(self.tables)})"
                )
            if len(lookup.lookup_key) != len(table.keys):
                raise ValueError(
                    f"{where}.lookup_key {lookup.lookup_key} must name one label column per key "
                    f"of {lookup.table} {table.keys}"
                )
            if lookup.timestamp_lookup_key and not table.timestamp_key:
                raise ValueError(
                    f"{where} has a timestamp_lookup_key but {lookup.table} has no timestamp_key: "
                    "a table without history has no point in time to look up"
                )
            unknown = [f for f in lookup.feature_names or [] if f not in table.columns]
            if unknown:
                raise ValueError(
                    f"{where}.feature_names {unknown} are not features of {lookup.table} "
                    f"(declared: {sorted(table.columns)})"
                )
        return self
