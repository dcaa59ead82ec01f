"""The online store on a Databricks Lakebase database instance (managed PostgreSQL).

The publish and lookup SQL are the PostgreSQL store's; only the connection differs. The instance's
address comes from the workspace (``database.get_database_instance``), the login is the workspace
identity (``current_user.me``) and its password a short-lived OAuth token the workspace generates
for this instance (``database.generate_database_credential``, valid for an hour). Nothing of it is
configured, stored, logged or shown: a connection opened within the token's hour stays open.
"""

from __future__ import annotations

from ..serving.keyed_model import lakebase_conninfo
from .databricks import DatabricksConfig
from .postgres_online_store import PostgresConnection

# Lakebase's database of every instance, where the creator's role may create tables.
DEFAULT_DATABASE = "databricks_postgres"


class LakebaseOnlineStore(PostgresConnection):
    """The online store on the Lakebase database instance ``instance`` of the target's workspace."""

    databricks: DatabricksConfig
    """The target's Databricks settings: which variables hold the workspace's credentials."""
    instance: str
    database: str = DEFAULT_DATABASE
    port: int = 5432
    sslmode: str = "require"

    def _dsn(self) -> str:
        from .databricks import workspace_client

        return lakebase_conninfo(
            workspace_client(self.databricks), self.instance, self.database, self.port, self.sslmode
        )

    def describe(self) -> str:
        return f"Lakebase {self.instance}/{self.database} (credentials from the workspace)"
