"""Target configuration: layered YAML, environment expansion and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from mlops_dagster.settings import TARGETS, ConfigError, Settings, load_project, load_settings


def write_yaml(path: Path, data) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("target", ["local", "dev", "staging", "prod"])
def test_every_target_loads_and_validates(local_root, target):
    settings = load_settings(target)
    assert isinstance(settings, Settings)
    assert settings.target == target
    assert settings.schema_ == "mlops"
    assert settings.dataset.key == "customerID" and settings.dataset.label == "churnString"
    assert settings.dataset.positive_label == "Yes"
    assert settings.training.model.class_path == "sklearn.linear_model.LogisticRegression"
    assert settings.training.model.params == {"C": 1.0, "max_iter": 1000}
    assert set(settings.validation.thresholds) == {"roc_auc", "f1", "log_loss"}
    assert settings.mlflow.tracking_uri and settings.mlflow.registry_uri
    assert TARGETS == ("local", "dev", "staging", "prod")


@pytest.mark.parametrize(
    "target, catalog",
    [
        ("dev", "ml_dev_catalog"),
        ("staging", "ml_staging_catalog"),
        ("prod", "ml_prod_catalog"),
    ],
)
def test_databricks_targets(local_root, target, catalog):
    settings = load_settings(target)
    assert settings.catalog == catalog
    assert settings.mlflow.model_name == f"{catalog}.mlops.churn_model"
    assert settings.mlflow.tracking_uri == "databricks"
    assert settings.mlflow.registry_uri == "databricks-uc"
    assert settings.root is None
    assert settings.landing_path == f"/Volumes/{catalog}/mlops/landing/churn"
    assert settings.reports_path == f"/Volumes/{catalog}/mlops/reports"
    assert settings.table("raw_customers") == f"{catalog}.mlops.raw_customers"


def test_local_root_and_mlflow_defaults(local_root):
    settings = load_settings("local")
    root = local_root.resolve()
    assert settings.root == root
    assert settings.root.is_absolute()
    assert settings.mlflow.tracking_uri == f"sqlite:///{root}/mlflow/mlflow.db"
    assert settings.mlflow.registry_uri == settings.mlflow.tracking_uri
    assert settings.landing_path == str(root / "landing" / "churn")
    assert settings.reports_path == str(root / "reports")
    assert settings.catalog == "ml_dev_catalog"
    assert settings.mlflow.model_name == "churn_model"
    assert settings.spark["spark.master"].startswith("local")


def test_relative_mlops_home_resolves_to_an_absolute_path(local_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLOPS_HOME", "relative/home")
    assert load_settings("local").root == (tmp_path / "relative" / "home").resolve()
    monkeypatch.delenv("MLOPS_HOME")
    assert load_settings("local").root == (tmp_path / ".mlops").resolve()


def test_explicit_mlflow_uris_are_kept_locally(local_root, tmp_path):
    extra = write_yaml(tmp_path / "mlflow.yaml", {"mlflow": {"tracking_uri": "http://localhost:5000"}})
    settings = load_settings("local", extra_file=extra)
    assert settings.mlflow.tracking_uri == "http://localhost:5000"
    assert settings.mlflow.registry_uri == "http://localhost:5000"
    assert settings.mlflow.experiment == "churn"  # merged, not replaced


def test_table_names(local_root):
    settings = load_settings("local")
    assert settings.table("x") == "ml_dev_catalog.mlops.x"


def test_unknown_target_names_the_choices(local_root, monkeypatch):
    with pytest.raises(ConfigError, match="'qa' is not a target; choose one of local, dev, staging, prod"):
        load_settings("qa")
    monkeypatch.setenv("MLOPS_TARGET", "production")
    with pytest.raises(ConfigError, match="'production'.*local, dev, staging, prod"):
        load_settings()
    assert issubclass(ConfigError, ValueError)


def test_mlops_target_selects_the_target(local_root, monkeypatch):
    assert load_settings().target == "local"
    monkeypatch.setenv("MLOPS_TARGET", "staging")
    assert load_settings().catalog == "ml_staging_catalog"
    assert load_settings("prod").target == "prod"  # an explicit target wins
    monkeypatch.delenv("MLOPS_TARGET")
    assert load_settings().target == "local"


def test_mlops_config_deep_merges_but_replaces_params(local_root, tmp_path, monkeypatch):
    extra = write_yaml(
        tmp_path / "model.yaml",
        {
            "training": {
                "model": {"class": "sklearn.ensemble.RandomForestClassifier", "params": {"n_estimators": 50}}
            },
        },
    )
    monkeypatch.setenv("MLOPS_CONFIG", str(extra))
    settings = load_settings()
    assert settings.training.model.class_path == "sklearn.ensemble.RandomForestClassifier"
    assert settings.training.model.params == {"n_estimators": 50}  # the old C / max_iter are gone
    assert settings.training.test_size == 0.2 and settings.training.seed == 42  # merged
    assert settings.catalog == "ml_dev_catalog"


def test_extra_file_argument_overrides(local_root, tmp_path):
    extra = write_yaml(
        tmp_path / "more.yaml",
        {
            "catalog": "my_catalog",
            "training": {"test_size": 0.3},
            "validation": {"thresholds": {"roc_auc": {"min": 0.9}}},
            "features": {"derived": {"totalCharges": "coalesce(totalCharges, 0.0)"}},
        },
    )
    settings = load_settings("local", extra_file=extra)
    assert settings.table("x") == "my_catalog.mlops.x"
    assert settings.training.test_size == 0.3
    assert settings.training.model.params == {"C": 1.0, "max_iter": 1000}
    assert set(settings.validation.thresholds) == {"roc_auc"}  # replaced whole
    assert settings.validation.thresholds["roc_auc"].min == 0.9
    assert settings.validation.compare_metric == "roc_auc" and settings.validation.max_regression == 0.005
    assert settings.features.derived == {"totalCharges": "coalesce(totalCharges, 0.0)"}
    assert settings.features.columns[-1] == "totalCharges"
    assert "avgMonthlySpend" not in settings.features.columns


def test_columns_are_replaced_whole(local_root, tmp_path):
    extra = write_yaml(
        tmp_path / "dataset.yaml",
        {
            "dataset": {
                "key": "id",
                "label": "y",
                "positive_label": 1,
                "columns": {"id": {"type": "string"}, "x": {"type": "double"}, "y": {"type": "long"}},
            },
            "features": {"categorical": [], "numerical": ["x"], "derived": {}},
        },
    )
    settings = load_settings("local", extra_file=extra)
    assert list(settings.dataset.columns) == ["id", "x", "y"]
    assert settings.dataset.name == "customers"  # merged
    assert settings.features.columns == ["x"]


def test_features_may_not_name_unknown_columns(local_root, tmp_path):
    extra = write_yaml(tmp_path / "features.yaml", {"features": {"numerical": ["tenure", "shoeSize"]}})
    with pytest.raises(
        ConfigError, match=r"features name columns that are not in dataset.columns: \['shoeSize'\]"
    ) as err:
        load_settings("local", extra_file=extra)
    assert "features.yaml" in str(err.value)


def test_a_derived_feature_may_be_listed_as_numerical(local_root, tmp_path):
    extra = write_yaml(tmp_path / "derived.yaml", {"features": {"numerical": ["tenure", "avgMonthlySpend"]}})
    settings = load_settings("local", extra_file=extra)
    assert "avgMonthlySpend" in settings.features.numeric_columns


def test_invalid_yaml_names_the_file(local_root, tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("training:\n  model: [unclosed\n")
    with pytest.raises(ConfigError, match="broken.yaml is not valid YAML"):
        load_settings("local", extra_file=bad)


def test_missing_file_names_the_file(local_root, tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_CONFIG", str(tmp_path / "nowhere.yaml"))
    with pytest.raises(ConfigError, match="nowhere.yaml does not exist"):
        load_settings()


def test_top_level_must_be_a_mapping(local_root, tmp_path):
    bad = tmp_path / "list.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="list.yaml must hold a mapping"):
        load_settings("local", extra_file=bad)


def test_empty_override_file_changes_nothing(local_root, tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_settings("local", extra_file=empty) == load_settings("local")


@pytest.mark.parametrize(
    "override, field",
    [
        ({"bogus_key": 1}, "bogus_key"),
        ({"training": {"epochs": 3}}, "training.epochs"),
        ({"monitoring": {"ground_truth": {"delay_days": 3}}}, "monitoring.ground_truth.delay_days"),
        ({"use_cases": {"churn": {"serving": {"strategie": "canary"}}}}, "serving.strategie"),
        ({"training": {"test_size": 1.5}}, "training.test_size"),
        (
            {"dataset": {"columns": {"customerID": {"type": "uuid"}, "churnString": {"type": "string"}}}},
            "dataset.columns.customerID.type",
        ),
        ({"validation": {"max_regression": -1}}, "validation.max_regression"),
    ],
)
def test_invalid_values_name_the_field_and_files(local_root, tmp_path, override, field):
    extra = write_yaml(tmp_path / "override.yaml", override)
    with pytest.raises(ConfigError) as err:
        load_settings("local", extra_file=extra)
    message = str(err.value)
    assert field in message
    assert "invalid configuration for target 'local'" in message
    assert "base.yaml" in message and "local.yaml" in message and "override.yaml" in message


@pytest.mark.parametrize(
    "databricks, compute",
    [
        ({"launch": "serverless"}, "serverless compute"),
        ({"cluster": {"existing_cluster_id": "c-1"}}, "an existing cluster"),
    ],
)
def test_cluster_permissions_without_a_job_cluster_are_refused(local_root, tmp_path, databricks, compute):
    permissions = {"cluster_permissions": {"CAN_RESTART": [{"group_name": "ml"}]}}
    extra = write_yaml(tmp_path / "perm.yaml", {"databricks": {**databricks, "permissions": permissions}})
    with pytest.raises(ConfigError, match=f"cluster_permissions apply to the job cluster.*run on {compute}"):
        load_settings("dev", extra_file=extra)
    jobs_only = write_yaml(
        tmp_path / "jobs.yaml", {"databricks": {**databricks, "permissions": {"job_permissions": {}}}}
    )
    assert load_settings("dev", extra_file=jobs_only).databricks.permissions == {"job_permissions": {}}


def test_key_must_be_a_column(local_root, tmp_path):
    extra = write_yaml(tmp_path / "key.yaml", {"dataset": {"key": "accountId"}})
    with pytest.raises(ConfigError, match="dataset.key 'accountId' is not one of dataset.columns"):
        load_settings("local", extra_file=extra)


def test_env_expansion_with_defaults(local_root, tmp_path, monkeypatch):
    extra = write_yaml(
        tmp_path / "env.yaml",
        {
            "catalog": "${MY_CATALOG:-fallback_catalog}",
            "mlflow": {"experiment": "exp-${MY_SUFFIX}-end", "model_name": "${MY_MODEL:-m}_${MY_VERSION:-1}"},
        },
    )
    monkeypatch.delenv("MY_CATALOG", raising=False)
    monkeypatch.delenv("MY_SUFFIX", raising=False)
    monkeypatch.delenv("MY_MODEL", raising=False)
    monkeypatch.setenv("MY_VERSION", "7")
    settings = load_settings("local", extra_file=extra)
    assert settings.catalog == "fallback_catalog"
    assert settings.mlflow.experiment == "exp--end"  # unset without default: empty
    assert settings.mlflow.model_name == "m_7"

    monkeypatch.setenv("MY_CATALOG", "from_env")
    monkeypatch.setenv("MY_SUFFIX", "x")
    settings = load_settings("local", extra_file=extra)
    assert settings.catalog == "from_env"
    assert settings.mlflow.experiment == "exp-x-end"


def test_env_expansion_in_the_shipped_dev_file(local_root, monkeypatch):
    monkeypatch.delenv("DATABRICKS_USER", raising=False)
    assert load_settings("dev").mlflow.experiment == "/Users/me@example.com/mlops_dagster/churn"
    monkeypatch.setenv("DATABRICKS_USER", "ada@example.org")
    assert load_settings("dev").mlflow.experiment == "/Users/ada@example.org/mlops_dagster/churn"


def test_settings_are_frozen(local_root):
    settings = load_settings("local")
    with pytest.raises(ValidationError, match="frozen"):
        settings.catalog = "other"
    assert settings.catalog == "ml_dev_catalog"


def test_the_feature_registry_defaults_to_the_features_assets_table(local_root):
    store = load_settings("local").feature_store
    table = store.tables["churn_features"]
    assert table.keys == ["customerID"] and table.timestamp_key == "_ingested_at" and table.online
    assert (
        table.owner == "customer-analytics" and table.columns["tenure"].description == "Months as a customer"
    )
    [lookup] = store.training_lookups
    assert (lookup.table, lookup.lookup_key, lookup.timestamp_lookup_key) == (
        "churn_features",
        ["customerID"],
        "_ingested_at",
    )
    assert store.online_store.kind == "sqlite" and store.online_store.dsn_env == "MLOPS_ONLINE_STORE_DSN"


@pytest.mark.parametrize(
    "feature_store, message",
    [
        (
            {"tables": {"churn_features": {"keys": ["tenure"]}}},
            r"feature_store.tables.churn_features.keys must be \[customerID\] \(dataset.key\)",
        ),
        (
            {"tables": {"churn_features": {"columns": {"tenure": {"dtype": "string"}}}}},
            "churn_features.columns.tenure.dtype is 'string' but the features asset writes it as 'double'",
        ),
        (
            {"training_lookups": [{"table": "nowhere", "lookup_key": ["customerID"]}]},
            r"training_lookups\[0\].table 'nowhere' is not declared in feature_store.tables",
        ),
        (
            {
                "training_lookups": [
                    {"table": "churn_features", "lookup_key": ["customerID"], "feature_names": ["shoeSize"]}
                ]
            },
            r"feature_names \['shoeSize'\] are not features of churn_features",
        ),
        (
            {
                "tables": {"plans": {"keys": ["id"], "description": "d", "owner": "o"}},
                "training_lookups": [
                    {"table": "plans", "lookup_key": ["customerID"], "timestamp_lookup_key": "t"}
                ],
            },
            "plans has no timestamp_key: a table without history has no point in time to look up",
        ),
    ],
)
def test_feature_store_mistakes_name_the_field(local_root, tmp_path, feature_store, message):
    extra = write_yaml(tmp_path / "fs.yaml", {"feature_store": feature_store})
    with pytest.raises(ConfigError, match=message):
        load_settings("local", extra_file=extra)


def test_descriptions_of_features_a_config_does_not_compute_are_unused(local_root, tmp_path):
    extra = write_yaml(
        tmp_path / "own.yaml",
        {"features": {"categorical": ["gender"], "numerical": ["tenure"], "derived": {}}},
    )
    settings = load_settings("local", extra_file=extra)
    assert settings.feature_names("churn_features") == ["gender", "tenure"]


@pytest.mark.parametrize("target", ["dev", "staging", "prod"])
def test_databricks_targets_use_a_lakebase_online_store(local_root, target):
    from mlops_dagster.resources.lakebase_online_store import LakebaseOnlineStore
    from mlops_dagster.resources.online_store import build_online_store

    store = build_online_store(load_settings(target))
    assert isinstance(store, LakebaseOnlineStore)
    assert (store.instance, store.database, store.sslmode) == (
        f"mlops-{target}-features",
        "databricks_postgres",
        "require",
    )


def test_a_lakebase_online_store_must_name_its_instance(local_root, tmp_path):
    extra = write_yaml(tmp_path / "lakebase.yaml", {"feature_store": {"online_store": {"kind": "lakebase"}}})
    with pytest.raises(ConfigError, match="kind lakebase needs feature_store.online_store.instance"):
        load_settings("local", extra_file=extra)


def test_sqlite_online_store_without_a_local_root_is_refused_clearly(local_root, tmp_path):
    from mlops_dagster.resources.online_store import build_online_store

    extra = write_yaml(tmp_path / "sqlite.yaml", {"feature_store": {"online_store": {"kind": "sqlite"}}})
    with pytest.raises(ConfigError, match="target 'dev' has no local root for the SQLite online store"):
        build_online_store(load_settings("dev", extra_file=extra))
    local = build_online_store(load_settings("local"))
    assert local.path == str(local_root.resolve() / "online" / "features.db")


@pytest.mark.parametrize("target", ["local", "dev", "staging", "prod"])
def test_the_use_case_name_names_everything(local_root, tmp_path, target):
    settings = load_settings(target, extra_file=write_yaml(tmp_path / "name.yaml", {"name": "upsell"}))
    names = settings.names
    assert (
        names.features,
        names.labels,
        names.training_set,
        names.model,
        names.endpoint,
        names.predictions,
        names.drift_report,
        names.features_online,
    ) == (
        "upsell_features",
        "upsell_labels",
        "upsell_training_set",
        "upsell_model",
        "upsell_endpoint",
        "upsell_predictions",
        "upsell_drift_report",
        "upsell_features_online",
    )
    assert (names.raw, names.quarantine) == ("raw_customers", "raw_customers_quarantine")  # from dataset.name
    assert settings.serving.endpoint == "upsell-endpoint"
    assert list(settings.feature_store.tables) == ["upsell_features"]
    assert settings.feature_store.training_lookups[0].table == "upsell_features"
    if target == "local":
        assert (settings.mlflow.model_name, settings.mlflow.experiment) == ("upsell_model", "upsell")
    else:
        assert settings.mlflow.model_name == f"{settings.catalog}.mlops.upsell_model"
        assert settings.mlflow.experiment.endswith("/upsell")
        assert settings.landing_path == f"/Volumes/{settings.catalog}/mlops/landing/upsell"
    if settings.governance.promotion.next is not None:
        assert settings.governance.promotion.next.model_name.endswith(".mlops.upsell_model")


@pytest.mark.parametrize("name", ["Upsell", "up-sell", "1st", ""])
def test_a_use_case_name_must_be_a_lowercase_identifier(local_root, tmp_path, name):
    with pytest.raises(ConfigError, match="name"):
        load_settings(extra_file=write_yaml(tmp_path / "name.yaml", {"name": name}))


def _two_use_cases(tmp_path, **more) -> Path:
    from .support.subscribers import SUBSCRIBERS

    return write_yaml(tmp_path / "two.yaml", {"use_cases": {"cancellation": SUBSCRIBERS}, **more})


def test_every_use_case_gets_the_shared_defaults_and_its_own_names(local_root, tmp_path):
    project = load_project("local", extra_file=_two_use_cases(tmp_path, training={"seed": 7}))
    assert project.names == ["churn", "house_prices", "cancellation"]  # the two demos, then the file's
    churn, _, cancellation = project.use_cases
    assert (churn.dataset.name, cancellation.dataset.name) == ("customers", "subscribers")
    assert churn.training.seed == cancellation.training.seed == 7  # the top level speaks for every use case
    assert (cancellation.mlflow.model_name, cancellation.mlflow.experiment) == (
        "cancellation_model",
        "cancellation",
    )
    assert cancellation.serving.endpoint == "cancellation-endpoint"
    assert (
        cancellation.landing_path
        == str(local_root.resolve() / "landing" / "cancellation")
        != churn.landing_path
    )
    assert (churn.governance.owner, cancellation.governance.owner) == ("customer-analytics", "unassigned")
    assert list(cancellation.feature_store.tables) == ["cancellation_features"]
    names = cancellation.names
    assert (names.key(names.model), names.group("training"), names.job("lifecycle"), names.op("x")) == (
        ["cancellation", "cancellation_model"],
        "cancellation_training",
        "cancellation_lifecycle_job",
        "cancellation__x",
    )
    assert project.use_case("cancellation") == cancellation and project.by_endpoint("churn-endpoint") == churn


def test_a_use_case_section_wins_over_the_shared_defaults_of_every_layer(local_root, tmp_path):
    from .support.subscribers import SUBSCRIBERS

    shared = write_yaml(
        tmp_path / "shared.yaml",
        {"governance": {"owner": "platform"}, "use_cases": {"cancellation": SUBSCRIBERS}},
    )
    churn, houses, cancellation = load_project("local", extra_file=shared).use_cases
    # The shipped demos say their owners in their sections; a use case that does not gets the default.
    assert (churn.governance.owner, houses.governance.owner, cancellation.governance.owner) == (
        "customer-analytics",
        "pricing-analytics",
        "platform",
    )
    own = write_yaml(
        tmp_path / "own.yaml",
        {
            "governance": {"owner": "retention"},
            "use_cases": {"churn": {"governance": {"owner": "retention-team"}}},
        },
    )
    assert load_settings("local", extra_file=own).governance.owner == "retention-team"


def test_a_file_without_use_cases_adjusts_the_demo_as_before(local_root, tmp_path):
    tweak = write_yaml(
        tmp_path / "tweak.yaml",
        {
            "governance": {"owner": "platform"},
            "serving": {"port": 9001},
            "features": {"categorical": ["gender"], "numerical": ["tenure"], "derived": {}},
        },
    )
    project = load_project("local", extra_file=tweak)
    assert project.names == ["churn"]  # today's format: the only use case
    [churn] = project.use_cases
    assert churn.governance.owner == "platform" and churn.features.columns == ["gender", "tenure"]
    assert churn.serving.port == 9001 and churn.dataset.name == "customers"


@pytest.mark.parametrize(
    "section, named",
    [
        ({"serving": {"port": 9999}}, "serving.port"),
        ({"catalog": "other"}, "catalog"),
        ({"mlflow": {"tracking_uri": "sqlite:///x.db"}}, "mlflow.tracking_uri"),
    ],
)
def test_a_use_case_cannot_change_what_the_project_shares(local_root, tmp_path, section, named):
    extra = write_yaml(tmp_path / "shared.yaml", {"use_cases": {"churn": section}})
    with pytest.raises(ConfigError, match=f"use case 'churn' sets {named}, which the whole project shares"):
        load_project("local", extra_file=extra)


def test_use_case_mistakes_are_named(local_root, tmp_path):
    with pytest.raises(
        ConfigError, match="there is no use case 'nope'; this project has churn, house_prices"
    ):
        load_settings("local", use_case="nope")
    mixed = write_yaml(tmp_path / "mixed.yaml", {"name": "x", "use_cases": {"x": {}}})
    with pytest.raises(ConfigError, match="`name` belongs to a use case"):
        load_project("local", extra_file=mixed)


def test_a_single_use_case_file_with_its_own_dataset_is_the_only_use_case(local_root, tmp_path):
    from .support.subscribers import SUBSCRIBERS

    named = load_project(
        "local", extra_file=write_yaml(tmp_path / "named.yaml", {"name": "cancellation", **SUBSCRIBERS})
    )
    assert named.names == ["cancellation"]
    [only] = named.use_cases
    # Nothing of the demo's use case is inherited: its owner, texts and feature descriptions stay with it.
    assert only.governance.owner == "unassigned" and only.governance.use_case == ""
    assert only.feature_store.tables["cancellation_features"].description.startswith(
        "Features of the cancellation"
    )
    unnamed = load_project("local", extra_file=write_yaml(tmp_path / "unnamed.yaml", SUBSCRIBERS))
    assert unnamed.names == ["subscribers"]  # named after dataset.name
    tweak = load_project(
        "local", extra_file=write_yaml(tmp_path / "tweak.yaml", {"dataset": {"file_pattern": "x*.csv"}})
    )
    assert tweak.names == ["churn"] and tweak.default.dataset.file_pattern == "x*.csv"
    assert tweak.default.governance.owner == "customer-analytics"  # still the demo, adjusted


def test_the_regression_demo_and_what_a_regression_may_not_say(local_root, tmp_path):
    houses = load_settings("local", use_case="house_prices")
    assert houses.problem_type == "regression" and houses.dataset.positive_label is None
    assert houses.validation.compare_metric == "rmse" and set(houses.validation.thresholds) == {"r2", "mae"}
    assert houses.score_column == "prediction" and load_settings("local").score_column == "churn_probability"
    wrong = write_yaml(
        tmp_path / "wrong.yaml",
        {"use_cases": {"house_prices": {"validation": {"thresholds": {"roc_auc": {"min": 0.7}}}}}},
    )
    with pytest.raises(
        ConfigError,
        match=r"validation names \['roc_auc'\], which a regression model does not "
        r"report \(it reports rmse, mae, r2\)",
    ):
        load_project("local", extra_file=wrong)
    text_label = write_yaml(
        tmp_path / "label.yaml",
        {
            "use_cases": {
                "house_prices": {
                    "dataset": {
                        "columns": {
                            "houseID": {"type": "string"},
                            "area": {"type": "double"},
                            "price": {"type": "string"},
                        }
                    },
                    "features": {"categorical": [], "numerical": ["area"], "derived": {}},
                }
            }
        },
    )
    with pytest.raises(
        ConfigError, match="dataset.columns.price is the label of a regression: its type must be"
    ):
        load_project("local", extra_file=text_label)
    no_positive = write_yaml(
        tmp_path / "positive.yaml",
        {
            "use_cases": {
                "house_prices": {
                    "problem_type": "classification",
                    "validation": {"thresholds": {"roc_auc": {"min": 0.7}}, "compare_metric": "roc_auc"},
                }
            }
        },
    )
    with pytest.raises(ConfigError, match="dataset.positive_label is required for classification"):
        load_project("local", extra_file=no_positive)


def test_the_readme_use_case_example_loads_as_it_says(local_root, tmp_path):
    readme = (Path(__file__).resolve().parents[1] / "docs" / "use-cases.md").read_text()
    example = readme[readme.index("# use_cases.yaml") :]
    example = write_yaml(tmp_path / "use_cases.yaml", yaml.safe_load(example[: example.index("```")]))
    project = load_project("local", extra_file=example)
    assert project.names == ["churn", "house_prices", "cancellation"]
    added = project.use_case("cancellation")
    assert (added.mlflow.model_name, added.serving.endpoint, added.governance.owner) == (
        "cancellation_model",
        "cancellation-endpoint",
        "subscriptions-team",
    )
    assert added.feature_store.tables["cancellation_features"].keys == ["subscriber_id"]
