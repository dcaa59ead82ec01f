"""mlops_dagster: the Databricks MLOps Stack as orchestrated Dagster pipelines."""
