"""Stage `features`: the feature table (model inputs per entity, with history), the labels table,
and the feature table's latest values published to the online store."""

from dagster import AssetExecutionContext, AssetSpec, MaterializeResult, asset, multi_asset

from ..feature_store.registry import registry_properties
from ..resources.lakehouse import Lakehouse, parquet_batches
from ..resources.online_store import OnlineStore
from ..resources.spark import SparkResource
from ..resources.step_launcher import StepLauncherParam
from ..runtime.progress import Progress
from ..settings import INGESTED_AT, Settings
from .metadata import audit_log, commit_info, freshness, table_metadata


def feature_assets(settings: Settings):
    names = settings.names

    @multi_asset(name=names.op("build_feature_tables"), specs=_table_specs(settings))
    def build_feature_tables(
        context: AssetExecutionContext,
        lakehouse: Lakehouse,
        spark: SparkResource,
        step_launcher: StepLauncherParam,
    ):
        yield from build_tables(context, lakehouse, spark, settings)

    if not settings.feature_store.tables[names.features].online:
        return [build_feature_tables]

    store = settings.feature_store.online_store.kind

    @asset(
        name=names.features_online,
        key_prefix=names.prefix,
        group_name=names.group("features"),
        deps=[names.key(names.features)],
        kinds={store, "spark"},
        description=_online_description(settings, store),
    )
    def publish_online_features(
        context: AssetExecutionContext,
        lakehouse: Lakehouse,
        online_store: OnlineStore,
        spark: SparkResource,
        step_launcher: StepLauncherParam,
    ) -> MaterializeResult:
        return publish_online(context, lakehouse, online_store, spark, settings)

    return [build_feature_tables, publish_online_features]


def _table_specs(settings: Settings) -> list[AssetSpec]:
    ds, fs, names = settings.dataset, settings.features, settings.names
    features_table, labels_table = settings.table(names.features), settings.table(names.labels)
    registered = settings.feature_store.tables[names.features]
    return [
        AssetSpec(
            names.key(names.features),
            group_name=names.group("features"),
            deps=[names.key(names.raw)],
            kinds={"spark", "delta"},
            description=(
                f"Model inputs per `{ds.key}`, computed with Spark from the raw table: "
                f"{len(fs.categorical)} categorical and {len(fs.numeric_columns)} numeric features "
                f"(derived ones from the Spark SQL expressions in the target config). Merged on "
                f"`{ds.key}` + `{INGESTED_AT}`, so every ingested version of an entity's features is kept "
                f"(point-in-time lookups read the one valid at a label's time). Delta table "
                f"`{features_table}`, owned by {registered.owner}; its version is the feature version."
            ),
            metadata={"dagster/table_name": features_table},
            freshness_policy=freshness(settings.automation.freshness.features_hours),
        ),
        AssetSpec(
            names.key(names.labels),
            group_name=names.group("features"),
            deps=[names.key(names.raw)],
            kinds={"spark", "delta"},
            description=(
                f"The training target, kept apart from the features: {settings.label_meaning}, "
                f"per `{ds.key}`. Delta table `{labels_table}`."
            ),
            metadata={"dagster/table_name": labels_table},
        ),
    ]


def _online_description(settings: Settings, store: str) -> str:
    names = settings.names
    return (
        f"The latest `{names.features}` values per `{settings.dataset.key}`, published to the online store "
        f"({store}) for lookups at serving time: the endpoint takes just `{settings.dataset.key}` and fetches the "
        "features. Only the keys whose features changed since the last published Delta version are "
        "upserted (a full republish when the table's history cannot say what changed: a restore, an "
        "overwrite, other columns); either way one transaction, and the Delta version is recorded."
    )


def _definition(settings: Settings) -> str:
    from ..ml.features import feature_definition

    ds, fs = settings.dataset, settings.features
    return feature_definition(
        ds.key, ds.label, ds.positive_label, settings.problem_type, fs.categorical, fs.numerical, fs.derived
    )


def _since(lakehouse: Lakehouse, session, settings: Settings, definition: str):
    """The newest ingestion time already featurized, when only newer raw rows need computing (the
    definitions are unchanged and no raw row was removed since); None: compute every row."""
    from pyspark.sql import functions as F

    from ..governance.lineage import data_commit
    from ..resources.lakehouse import adds_or_updates_only

    names = settings.names
    raw_table, features_table = settings.table(names.raw), settings.table(names.features)
    if not (lakehouse.exists(features_table) and lakehouse.exists(settings.table(names.labels))):
        return None, "full (first build)"
    last = data_commit(lakehouse, features_table, lakehouse.version(features_table), "source_version")
    if last.get("feature_definition") != definition or last.get("source_table") != raw_table:
        return None, "full (feature definitions changed)"
    since = int(last["source_version"])
    if not all(adds_or_updates_only(h) for h in lakehouse.history(raw_table) if h["version"] > since):
        return None, f"full ({raw_table} was restored, overwritten or had rows deleted)"
    newest = lakehouse.read_spark(session, features_table).agg(F.max(INGESTED_AT)).first()[0]
    return (newest, "incremental") if newest is not None else (None, "full (the feature table is empty)")


def build_tables(context, lakehouse: Lakehouse, spark: SparkResource, settings: Settings):
    """The feature and label tables from the raw rows (only those ingested since the last build
    when that is enough); audit rows; both assets' results."""
    from pyspark.sql import functions as F

    names, definition = settings.names, _definition(settings)
    raw_table = settings.table(names.raw)
    session = spark.session()
    raw_version = lakehouse.version(raw_table)
    raw = lakehouse.read_spark(session, raw_table)
    newest, mode = _since(lakehouse, session, settings, definition)
    if newest is not None:  # only rows ingested after the last build (each ingestion stamps its time)
        raw = raw.where(F.col(INGESTED_AT) > F.lit(newest))
    commit = {
        **commit_info(context),
        "source_table": raw_table,
        "source_version": str(raw_version),
        "feature_definition": definition,
    }
    feature_info, label_info, processed = _write_tables(
        context, lakehouse, session, settings, raw, commit, mode, incremental=newest is not None
    )
    context.log.info(f"{processed:,} raw rows featurized ({mode})")
    audit_log(context, settings).tables_written([feature_info, label_info])
    lineage = {"source_table": raw_table, "source_delta_version": raw_version}
    yield MaterializeResult(
        asset_key=names.key(names.features),
        metadata={
            **table_metadata(feature_info),
            **lineage,
            "feature_columns": settings.features.columns,
            "mode": mode,
            "rows_processed": processed,
        },
    )
    yield MaterializeResult(
        asset_key=names.key(names.labels), metadata={**table_metadata(label_info), **lineage, "mode": mode}
    )


def _write_tables(
    context,
    lakehouse: Lakehouse,
    session,
    settings: Settings,
    raw,
    commit: dict,
    mode: str,
    incremental: bool,
):
    """Features merged on key + ingestion time, labels merged (or, built whole, overwritten):
    (feature info, label info, raw rows processed)."""
    from ..ml.features import build_features, build_labels
    from ..ml.problem import problem_type

    ds, fs, names = settings.dataset, settings.features, settings.names
    raw_table, features_table, labels_table = (
        settings.table(n) for n in (names.raw, names.features, names.labels)
    )
    registered = settings.feature_store.tables[names.features]
    comments = {
        c: spec.description for c, spec in registered.columns.items() if c in fs.columns and spec.description
    }
    with Progress(context.log.info, "features", spark=session) as progress:
        progress.say(f"computing features into {features_table} ({mode})")
        processed = raw.count()
        features = build_features(raw, ds.key, fs.categorical, fs.numerical, fs.derived, carry=(INGESTED_AT,))
        feature_info = lakehouse.merge_spark(
            features_table,
            features,
            [ds.key, INGESTED_AT],
            commit_info=commit,
            properties=registry_properties(registered),
            description=registered.description,
            column_comments=comments,
        )
        # A label's event time is when its row was ingested: training looks features up as of then.
        progress.say(f"writing {labels_table}")
        labels = build_labels(
            raw,
            ds.key,
            ds.label,
            problem_type(settings.problem_type),
            ds.positive_label,
            carry=(INGESTED_AT,),
        )
        label_options = dict(
            commit_info=commit,
            properties={"primary_key": ds.key},
            description=f"Labels ({settings.label_meaning}) keyed by {ds.key}, from {raw_table}.",
        )
        label_info = (
            lakehouse.merge_spark(labels_table, labels, [ds.key], **label_options)
            if incremental
            else lakehouse.write_spark(labels_table, labels, "overwrite", **label_options)
        )
    return feature_info, label_info, processed


def publish_online(
    context, lakehouse: Lakehouse, online_store: OnlineStore, spark: SparkResource, settings: Settings
) -> MaterializeResult:
    """The feature table's latest row per key upserted into the online store: the keys changed since
    the published Delta version, or all of them when the history cannot say."""
    from ..ml.feature_lookup import latest_per_key

    key, features_table = settings.dataset.key, settings.table(settings.names.features)
    session = spark.session()
    version = lakehouse.version(features_table)
    columns = [key, INGESTED_AT, *settings.features.columns]
    published = online_store.published_version(features_table)
    meta = {
        "online_store": online_store.describe(),
        "feature_table": features_table,
        "delta_version_published": version,
        "previous_version": published if published is not None else "none",
    }
    if published == version:
        context.log.info(f"{features_table} v{version} is already in the online store")
        return MaterializeResult(metadata={**meta, "rows_published": 0, "mode": "unchanged"})
    changes = None
    if (
        published is not None
        and published < version
        and online_store.published_columns(features_table) == columns
    ):
        changes = lakehouse.read_spark_changes(session, features_table, published)
    mode = f"incremental (keys changed since v{published})" if changes is not None else "full"
    source = changes if changes is not None else lakehouse.read_spark(session, features_table, version)
    with (
        lakehouse.staging_dir() as staging,
        Progress(context.log.info, "online store", spark=session) as progress,
    ):
        progress.say(f"finding the latest row per key ({mode})")
        latest_per_key(source.select(*columns), [key], INGESTED_AT).write.parquet(staging + "/latest")
        rows = parquet_batches(staging + "/latest", batch_size=50_000)
        progress.say(f"publishing to {online_store.describe()}")
        info = online_store.publish(
            features_table,
            rows,
            [key],
            version,
            incremental=changes is not None,
            newest=INGESTED_AT,
            progress=progress.rows_done,
        )
    context.log.info(f"published {info.rows} rows of {features_table} v{version} to {info.store} ({mode})")
    return MaterializeResult(
        metadata={**meta, "rows_published": info.rows, "mode": mode, "online_table": info.online_table}
    )
