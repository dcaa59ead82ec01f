"""The local serving gateway: a Databricks-style model serving endpoint on this machine."""
