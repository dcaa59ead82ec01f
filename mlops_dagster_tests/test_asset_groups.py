"""The global lineage tells each use case's lifecycle in order: its stage groups form a chain, so
the group graph the Dagster UI draws has no cycle and reads ingestion -> ... -> monitoring."""

from __future__ import annotations

from graphlib import CycleError, TopologicalSorter

import pytest

from mlops_dagster.definitions import build_definitions
from mlops_dagster.jobs.lifecycle import LIFECYCLE_GROUPS
from mlops_dagster.settings import load_project

# Stages in lifecycle order. Serving and batch inference both start from the registry and neither
# feeds the other; monitoring judges the batch predictions, not the endpoint.
INDEPENDENT = {("serving", "inference"), ("serving", "monitoring")}


def group_graph(graph, groups: set[str]) -> dict[str, set[str]]:
    """Group -> the groups it reads from, over the asset edges between different groups of ``groups``."""
    upstream: dict[str, set[str]] = {group: set() for group in groups}
    for key in graph.get_all_asset_keys():
        group = graph.get(key).group_name
        if group not in groups:
            continue
        for parent in graph.get(key).parent_keys:
            parent_group = graph.get(parent).group_name
            if parent_group in groups and parent_group != group:
                upstream[group].add(parent_group)
    return upstream


def reachable(upstream: dict[str, set[str]]) -> set[tuple[str, str]]:
    """Every (earlier, later) pair of groups joined by a path of asset edges."""
    pairs: set[tuple[str, str]] = set()

    def visit(group: str, start: str) -> None:
        for parent in upstream[group]:
            if (parent, start) not in pairs:
                pairs.add((parent, start))
                visit(parent, start)

    for group in upstream:
        visit(group, group)
    return pairs


@pytest.fixture(scope="module")
def defs_and_project(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("MLOPS_HOME", str(tmp_path_factory.mktemp("mlops")))
    mp.setenv("MLOPS_TARGET", "local")
    mp.delenv("MLOPS_CONFIG", raising=False)
    project = load_project()
    yield build_definitions(project), project
    mp.undo()


def test_the_lifecycle_order_is_the_documented_one():
    assert LIFECYCLE_GROUPS == (
        "ingestion",
        "features",
        "training",
        "registry",
        "serving",
        "inference",
        "monitoring",
    )


def test_each_use_case_reads_its_lifecycle_in_order(defs_and_project):
    defs, project = defs_and_project
    graph = defs.resolve_asset_graph()
    assert len(project.use_cases) >= 2
    for settings in project.use_cases:
        names = settings.names
        groups = {names.group(stage): stage for stage in LIFECYCLE_GROUPS}
        present = {graph.get(key).group_name for key in graph.get_all_asset_keys()} & set(groups)
        assert present == set(groups), f"{names.use_case}: every stage has a group"
        upstream = group_graph(graph, set(groups))
        try:
            order = [groups[g] for g in TopologicalSorter(upstream).static_order()]
        except CycleError as exc:
            pytest.fail(f"{names.use_case}: the stage groups form a cycle: {exc.args[1]}")
        # Exactly the lifecycle's partial order: each stage after every earlier one it can be.
        expected = {
            (a, b) for i, a in enumerate(LIFECYCLE_GROUPS) for b in LIFECYCLE_GROUPS[i + 1 :]
        } - INDEPENDENT
        assert {(groups[a], groups[b]) for a, b in reachable(upstream)} == expected, names.use_case
        assert [s for s in order if s != "serving"] == [s for s in LIFECYCLE_GROUPS if s != "serving"]
        assert order.index("registry") < order.index("serving")


def test_a_cycle_of_groups_is_caught():
    """The check can fail: outcomes in the monitoring group, as they were, close a loop through training."""
    upstream = {
        "ingestion": set(),
        "features": {"ingestion"},
        "training": {"features", "monitoring"},
        "registry": {"training"},
        "inference": {"registry"},
        "monitoring": {"inference"},
    }
    with pytest.raises(CycleError):
        list(TopologicalSorter(upstream).static_order())
    assert ("monitoring", "monitoring") in reachable(upstream)


def test_outcomes_are_ingested_with_the_landing_data_but_not_by_the_training_job(defs_and_project):
    defs, project = defs_and_project
    graph = defs.resolve_asset_graph()
    for settings in project.use_cases:
        names = settings.names
        outcomes = {tuple(names.key(names.ground_truth)), tuple(names.key(names.ground_truth_quarantine))}
        for key in outcomes:
            assert graph.get(_key(key)).group_name == names.group("ingestion")
        training = defs.resolve_job_def(names.job("training"))
        selected = {tuple(k.path) for k in training.asset_layer.executable_asset_keys}
        assert tuple(names.key(names.raw)) in selected and not outcomes & selected
        monitoring = defs.resolve_job_def(names.job("monitoring"))
        assert outcomes <= {tuple(k.path) for k in monitoring.asset_layer.executable_asset_keys}


def _key(path: tuple[str, ...]):
    from dagster import AssetKey

    return AssetKey(list(path))
