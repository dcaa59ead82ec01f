"""Resources take settings sections as typed Dagster config (resources/section_config.py): the
running resource holds the section itself, checked by the schema's own bounds."""

import pytest
from dagster import asset, materialize

from mlops_dagster.resources.billing import DatabricksBilling
from mlops_dagster.resources.section_config import to_config
from mlops_dagster.settings import ClusterSettings, DatabricksSettings

DATABRICKS = DatabricksSettings(
    token_env="MY_TOKEN",
    cluster={"availability": "ON_DEMAND", "max_workers": 5, "custom_tags": {"team": "ml"}},
    secrets_to_env_variables=[{"name": "DATABRICKS_TOKEN", "scope": "mlops", "key": "token"}],
    libraries=[{"pypi": {"package": "evidently==0.7.23"}}],
    permissions={"job_permissions": {"CAN_VIEW": []}},
)


@asset(required_resource_keys={"billing"})
def seen(context) -> dict:
    databricks = context.resources.billing.databricks
    assert isinstance(databricks, DatabricksSettings) and isinstance(databricks.cluster, ClusterSettings)
    return databricks.model_dump()


def test_a_section_reaches_the_running_resource_as_itself():
    billing = DatabricksBilling(databricks=to_config(DATABRICKS), target="dev")
    assert (
        materialize([seen], resources={"billing": billing}).output_for_node("seen") == DATABRICKS.model_dump()
    )


def test_its_config_is_described_and_checked_by_the_schema():
    billing = DatabricksBilling(databricks=to_config(DATABRICKS), target="dev")
    fields = billing.get_resource_definition().config_schema.config_type.fields
    cluster = fields["databricks"].config_type.fields["cluster"].config_type.fields
    assert cluster["max_workers"].description == ClusterSettings.model_fields["max_workers"].description
    too_few = {
        "resources": {"billing": {"config": {"target": "dev", "databricks": {"cluster": {"max_workers": 0}}}}}
    }
    with pytest.raises(Exception) as refused:
        materialize([seen], resources={"billing": billing}, run_config=too_few)
    assert "databricks.cluster.max_workers" in str(refused.value.__cause__)
