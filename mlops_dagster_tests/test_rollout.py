"""Rollout plans for blue/green, canary and shadow endpoints (pure functions)."""

from __future__ import annotations

from mlops_dagster.serving.rollout import plan, serving_version

MODEL = "churn_model"


def routes(config):
    versions = {e["name"]: e["entity_version"] for e in config["served_entities"]}
    return (
        {
            versions[r["served_model_name"]]: r["traffic_percentage"]
            for r in config["traffic_config"]["routes"]
        },
        [versions[s["served_model_name"]] for s in config["shadow_routes"]],
    )


def test_a_new_endpoint_serves_the_champion():
    [step] = plan("blue_green", MODEL, "1", None, None)
    assert routes(step) == ({"1": 100}, [])
    assert step["served_entities"][0] == {
        "name": "churn_model-1",
        "entity_name": MODEL,
        "entity_version": "1",
        "workload_size": "Small",
        "scale_to_zero_enabled": False,
    }


def test_nothing_to_do_when_the_endpoint_already_serves_the_target():
    [live] = plan("blue_green", MODEL, "1", None, None)
    assert plan("blue_green", MODEL, "1", None, live) == []
    assert serving_version(live) == "1"


def test_blue_green_loads_green_at_zero_switches_then_retires_blue():
    [live] = plan("blue_green", MODEL, "1", None, None)
    steps = plan("blue_green", MODEL, "2", None, live)
    assert [routes(s)[0] for s in steps] == [{"1": 100, "2": 0}, {"1": 0, "2": 100}, {"2": 100}]


def test_canary_splits_traffic_with_a_validated_challenger_only():
    [live] = plan("canary", MODEL, "1", None, None)
    [step] = plan("canary", MODEL, "1", "2", live, canary_percent=10)
    assert routes(step) == ({"1": 90, "2": 10}, [])
    assert plan("canary", MODEL, "1", "2", step, canary_percent=10) == []
    [back] = plan("canary", MODEL, "2", None, step)  # the challenger won: it takes everything
    assert routes(back) == ({"2": 100}, [])


def test_shadow_mirrors_the_challenger_without_traffic():
    [step] = plan("shadow", MODEL, "1", "2", None)
    assert routes(step) == ({"1": 100, "2": 0}, ["2"])
    assert plan("shadow", MODEL, "1", None, step) != []  # challenger gone: drop the shadow


def test_uc_model_names_give_short_served_names():
    [step] = plan("blue_green", "ml_dev_catalog.mlops.churn_model", "4", None, None, scale_to_zero=True)
    assert step["served_entities"][0]["name"] == "churn_model-4"
    assert step["served_entities"][0]["scale_to_zero_enabled"] is True
