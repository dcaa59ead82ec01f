"""The online store on a Databricks Lakebase database instance (managed PostgreSQL).

The publish and lookup SQL are the PostgreSQL store's; only the connection differs. The instance's
address comes from the workspace (``database.get_database_instance``), the login is the workspace
identity (``current_user.me``) and its password a short-lived OAuth token the workspace generates
for this instance (``database.generate_database_credential``, valid for an hour). Nothing of it is
configured, stored, logged or shown: a connection opened within the token's hour stays open.
"""

from __future__ import annotations

import uuid

from .databricks import DatabricksConfig
from .postgres_online_store import PostgresConnection

# Lakebase's database of every instance, where the creator's role may create tables.
DEFAULT_DATABASE = "databricks_postgres"


class LakebaseNotReadyError(RuntimeError):
    """The database instance is missing or not available: the message says what to do."""


class LakebaseOnlineStore(PostgresConnection):
    """The online store on the Lakebase database instance ``instance`` of the target's workspace."""

    databricks: DatabricksConfig
    """The target's Databricks settings: which variables hold the workspace's credentials."""
    instance: str
    database: str = DEFAULT_DATABASE
    port: int = 5432
    sslmode: str = "require"

    def _dsn(self) -> str:
        from databricks.sdk.errors import NotFound
        from databricks.sdk.service.database import DatabaseInstanceState
        from psycopg.conninfo import make_conninfo

        from .databricks import workspace_client

        workspace = workspace_client(self.databricks)
        try:
            found = workspace.database.get_database_instance(self.instance)
        except NotFound:
            raise LakebaseNotReadyError(
                f"the Lakebase database instance {self.instance} of feature_store.online_store does not "
                "exist: run `mlops bootstrap` on this target (it creates it), or name an existing one"
            ) from None
        if found.state != DatabaseInstanceState.AVAILABLE or not found.read_write_dns:
            state = found.state.value if found.state else "unknown"
            raise LakebaseNotReadyError(
                f"the Lakebase database instance {self.instance} is {state}, not AVAILABLE: start it "
                "in the workspace (Compute > Lakebase) or wait for it, then run again"
            )
        credential = workspace.database.generate_database_credential(
            request_id=str(uuid.uuid4()), instance_names=[self.instance]
        )
        return make_conninfo(
            host=found.read_write_dns,
            port=self.port,
            dbname=self.database,
            user=workspace.current_user.me().user_name,
            password=credential.token,
            sslmode=self.sslmode,
        )

    def describe(self) -> str:
        return f"Lakebase {self.instance}/{self.database} (credentials from the workspace)"
