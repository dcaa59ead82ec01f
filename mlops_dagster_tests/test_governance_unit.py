"""Governance decisions without Dagster, on real stores: a model registry on SQLite and Delta
tables in a temporary directory. May this version be approved, promoted, rolled back to, restored,
moved on to the next environment, and why not; what a registration records."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from mlops_dagster.governance.approvals import approvable_version, is_approved, record_approval
from mlops_dagster.governance.audit import AuditLog
from mlops_dagster.governance.promotion import (
    champion_to_move_on,
    decision,
    move_to_next_environment,
    promotion_verdict,
)
from mlops_dagster.governance.recovery import (
    is_registered,
    last_registration,
    restore_refusal,
    rollback_target,
)
from mlops_dagster.governance.registration import challenger_card, challenger_description, training_data
from mlops_dagster.ml.evaluation import validate
from mlops_dagster.resources.local_lakehouse import LocalLakehouse
from mlops_dagster.resources.registry import CHALLENGER, CHAMPION, VALIDATION_TAG, ModelRegistry
from mlops_dagster.settings import load_settings


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One SQLite registry for the module (creating its schema takes seconds) and a logged-model
    stand-in: registering only records the source."""
    root = tmp_path_factory.mktemp("registry")
    (root / "model").mkdir()
    uri = f"sqlite:///{root}/mlflow.db"
    return ModelRegistry(tracking_uri=uri, registry_uri=uri), str(root / "model")


@pytest.fixture
def settings(local_root):
    return load_settings("local")


@pytest.fixture
def registry(store, request):
    """The store's registry acting on a model of this test's own."""
    base, _ = store
    return base.for_model(request.node.name.replace("[", "_").replace("]", "").replace("-", "_"))


@pytest.fixture
def lakehouse(tmp_path):
    return LocalLakehouse(root=str(tmp_path / "lakehouse"))


def _register(registry, store, status: str | None) -> str:
    tags = {VALIDATION_TAG: status} if status else {}
    return str(registry.register(store[1], None, None, tags=tags, description="").version)


def _with(settings, **governance):
    return settings.model_copy(update={"governance": settings.governance.model_copy(update=governance)})


# --- approval -------------------------------------------------------------------------------------


def test_only_a_validated_version_by_number_or_alias_may_be_approved(registry, store):
    passed, failed = _register(registry, store, "passed"), _register(registry, store, "failed")
    registry.set_alias(CHALLENGER, passed)
    assert approvable_version(registry, passed, "m") == (passed, None)
    assert approvable_version(registry, CHALLENGER, "m") == (passed, None)
    assert approvable_version(registry, failed, "m") == (
        failed,
        f"m v{failed} has not passed validation: only validated versions can be approved",
    )
    assert approvable_version(registry, "nobody", "m") == (
        "nobody",
        "m has no version with alias 'nobody': name a version number, or the alias of an existing version",
    )


def test_a_recorded_approval_is_found_for_that_version_only(settings, lakehouse):
    assert not is_approved(lakehouse, settings, "3")
    now = record_approval(lakehouse, settings, "3", "ada", "looks good", "run-1")
    assert is_approved(lakehouse, settings, "3") and not is_approved(lakehouse, settings, "4")
    [row] = lakehouse.read(settings.table("model_approvals")).to_dict("records")
    assert {
        k: row[k] for k in ("model_name", "version", "approver", "comment", "target", "dagster_run_id")
    } == {
        "model_name": "churn_model",
        "version": "3",
        "approver": "ada",
        "comment": "looks good",
        "target": "local",
        "dagster_run_id": "run-1",
    }
    assert pd.Timestamp(row["approved_at"]) == now


# --- promotion to champion ------------------------------------------------------------------------


def test_promotion_needs_a_recorded_pass_then_an_approval_then_no_regression(
    settings, registry, store, lakehouse
):
    failed, unvalidated, passed = (_register(registry, store, s) for s in ("failed", None, "passed"))
    metrics = {"roc_auc": 0.80}
    assert promotion_verdict(registry, lakehouse, settings, failed, metrics, None) == (
        False,
        f"version {failed} has not passed validation (status: failed)",
    )
    assert promotion_verdict(registry, lakehouse, settings, unvalidated, metrics, None) == (
        False,
        f"version {unvalidated} has not passed validation (status: None)",
    )
    assert promotion_verdict(registry, lakehouse, settings, passed, metrics, None) == (
        True,
        "there is no champion yet",
    )
    # roc_auc 0.80 against 0.804: a regression of 0.004, within the allowed 0.005.
    allowed, reason = promotion_verdict(registry, lakehouse, settings, passed, metrics, {"roc_auc": 0.804})
    assert allowed and "change -0.0040" in reason
    refused, reason = promotion_verdict(registry, lakehouse, settings, passed, metrics, {"roc_auc": 0.806})
    assert not refused and "change -0.0060" in reason

    strict = _with(settings, require_approval=True)
    assert promotion_verdict(registry, lakehouse, strict, passed, metrics, None) == (
        False,
        f"version {passed} has no approval record (mlops approve --version {passed} --comment '...')",
    )
    record_approval(lakehouse, strict, passed, "ada", "ok", "run-1")
    assert promotion_verdict(registry, lakehouse, strict, passed, metrics, None) == (
        True,
        "there is no champion yet",
    )


def test_the_decision_says_who_holds_the_alias_and_why():
    assert decision(True, "7", "6", "better", CHAMPION) == "promoted version 7 to champion: better"
    assert decision(False, "7", "6", "worse", CHAMPION) == (
        "kept version 6 as champion; challenger 7 not promoted: worse"
    )
    assert decision(False, "1", None, "failed", CHAMPION) == (
        "kept version none as champion; challenger 1 not promoted: failed"
    )


# --- promotion to the next environment ------------------------------------------------------------


def test_a_champion_moves_on_only_to_a_next_environment_once_validated(settings, registry, store):
    assert champion_to_move_on(registry, settings, CHAMPION) == (
        None,
        "churn_model has no champion to promote",
    )
    failed = _register(registry, store, "failed")
    registry.set_alias(CHAMPION, failed)
    champion, refusal = champion_to_move_on(registry, settings, CHAMPION)
    assert str(champion.version) == failed
    assert refusal == f"churn_model v{failed} has not passed validation here: it cannot move on"
    passed = _register(registry, store, "passed")
    registry.set_alias(CHAMPION, passed)
    champion, refusal = champion_to_move_on(registry, settings, CHAMPION)
    assert (str(champion.version), refusal) == (passed, None)
    last = _with(settings, promotion=settings.governance.promotion.model_copy(update={"next": None}))
    assert champion_to_move_on(registry, last, CHAMPION) == (
        None,
        "target local has no next environment (governance.promotion.next)",
    )


def test_deploy_code_records_the_code_version_and_copies_nothing(settings, registry, store, monkeypatch):
    monkeypatch.setenv("MLOPS_CODE_VERSION", "abc1234")
    details, outcome = move_to_next_environment(registry, settings, "3", "release 1.2")
    assert details == {
        "pattern": "deploy_code",
        "to_target": "staging",
        "reason": "release 1.2",
        "code_version": "abc1234",
    }
    assert outcome == "churn_model v3 validated on local: staging retrains from code abc1234 (deploy_code)"


def test_deploy_model_copies_the_version_to_the_next_registered_model(settings, registry, store):
    version = _register(registry, store, "passed")
    destination = f"{registry.model_name}_next"
    promotion = settings.governance.promotion.model_copy(
        update={
            "pattern": "deploy_model",
            "next": settings.governance.promotion.next.model_copy(update={"model_name": destination}),
        }
    )
    settings = _with(settings, promotion=promotion).model_copy(
        update={"mlflow": settings.mlflow.model_copy(update={"model_name": registry.model_name})}
    )
    details, outcome = move_to_next_environment(registry, settings, version, "release")
    assert details == {
        "pattern": "deploy_model",
        "to_target": "staging",
        "reason": "release",
        "copied_to": f"{destination}/1",
    }
    assert outcome == f"copied {registry.model_name} v{version} to {destination} version 1 (staging)"
    copied = registry.for_model(destination).by_alias(CHALLENGER)
    assert str(copied.version) == "1" and copied.tags[VALIDATION_TAG] == "passed"


# --- recovery -------------------------------------------------------------------------------------


def test_rollback_goes_to_the_previous_champion_or_a_named_validated_version(registry, store):
    old, failed, current = (_register(registry, store, s) for s in ("passed", "failed", "passed"))
    registry.set_tags(current, {"previous_champion": old})
    champion = registry.version(current)
    assert rollback_target(registry, champion, "") == (old, None)
    assert rollback_target(registry, champion, failed) == (
        failed,
        f"version {failed} has not passed validation",
    )
    assert rollback_target(registry, champion, current) == (
        current,
        f"version {current} already is the champion",
    )
    assert rollback_target(registry, registry.version(old), "") == (
        "",
        f"version {old} records no previous champion: name to_version",
    )


def test_only_an_earlier_table_version_may_be_restored():
    assert restore_refusal("c.s.t", 0, 3) is None
    assert restore_refusal("c.s.t", 2, 3) is None
    for version in (3, 4, -1):
        assert (
            restore_refusal("c.s.t", version, 3)
            == "c.s.t has versions 0..3; choose an earlier one than the current 3"
        )


def test_a_deleted_version_is_found_in_the_audit_log_by_its_newest_registration(
    settings, registry, store, lakehouse
):
    from mlflow import MlflowClient

    version = _register(registry, store, "passed")
    assert is_registered(registry, version)
    MlflowClient(registry.tracking_uri, registry.registry_uri).delete_model_version(
        registry.model_name, version
    )
    assert not is_registered(registry, version)

    audit = AuditLog.of_run(lakehouse, settings, "run-1")
    table = settings.table("audit_log")
    audit.record("model_registered", "m v2", model_uri="models:/old", mlflow_run_id="r0")
    assert last_registration(lakehouse, table, "m v3") is None
    audit.record_events(
        [
            audit.event("model_registered", "m v3", model_uri="models:/a", mlflow_run_id="r1"),
            audit.event("model_validated", "m v3", outcome="passed"),
        ]
    )
    audit.record("model_registered", "m v3", model_uri="models:/b", mlflow_run_id="r2")
    assert last_registration(lakehouse, table, "m v3") == {"model_uri": "models:/b", "mlflow_run_id": "r2"}


# --- registration ---------------------------------------------------------------------------------


def test_a_registration_records_its_training_data_card_and_description(settings, lakehouse):
    lakehouse.write(
        "c.s.training",
        pd.DataFrame({"k": [1]}),
        "overwrite",
        commit_info={
            "features_table": "c.s.f",
            "features_version": "3",
            "labels_table": "c.s.l",
            "labels_version": "5",
        },
    )
    lakehouse.set_properties("c.s.training", {"owner": "x"})  # a later commit without lineage
    assert training_data(lakehouse, "c.s.training", 1) == {
        "training set": "c.s.training v1",
        "features": "c.s.f v3",
        "labels": "c.s.l v5",
    }
    lakehouse.write("c.s.plain", pd.DataFrame({"k": [1]}), "overwrite")  # no lineage recorded
    assert training_data(lakehouse, "c.s.plain", 0) == {"training set": "c.s.plain v0"}

    trained = SimpleNamespace(
        run_id="r1",
        model_uri="models:/m1",
        training_set="c.s.training",
        training_set_version=1,
        metrics={"roc_auc": 0.8, "f1": 0.5, "log_loss": 0.6},
    )
    validation = validate(trained.metrics, settings.validation.thresholds)
    card = challenger_card(settings, lakehouse, trained, "4", validation, "run-9")
    assert card.startswith("# Model card: churn_model version 4\n")
    assert "- **Validation:** FAILED" in card and "- features: c.s.f v3" in card
    assert "- MLflow run: r1\n- model URI: models:/m1\n- Dagster run: run-9\n- target: local" in card
    assert "| log_loss | 0.6000 |  | 0.55 | FAIL |" in card
    assert challenger_description(settings, trained, validation) == (
        f"{settings.governance.use_case} Owner: customer-analytics. Trained on c.s.training v1; validation FAILED "
        f"({validation.summary}). Full card: model_card.md in run r1."
    )
