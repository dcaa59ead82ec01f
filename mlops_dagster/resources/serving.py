"""Serving backends: where model serving endpoints live. One interface, one implementation per
target. Both talk the Databricks serving REST API through databricks-sdk: the local backend to
the local gateway (started on demand), the Databricks one (with the Databricks targets) to a
workspace."""

import time
from abc import ABC, abstractmethod
from typing import Any

from dagster import ConfigurableResource, ResourceDependency

from ..settings import Project


class EndpointUpdateFailed(RuntimeError):
    """An endpoint config could not be applied; the previous config keeps serving."""


class ServingBackend(ConfigurableResource, ABC):
    """Create or update an endpoint to a config and wait until it serves it."""

    ready_timeout_seconds: float = 300

    @abstractmethod
    def _workspace(self, start: bool = True):
        """A databricks-sdk WorkspaceClient for the place endpoints live (None when ``start`` is
        false and there is nothing running to ask)."""

    @abstractmethod
    def invocation_url(self, endpoint: str) -> str: ...

    @staticmethod
    def _get(client, endpoint: str) -> dict[str, Any] | None:
        from databricks.sdk.errors import NotFound

        try:
            return client.do("GET", f"/api/2.0/serving-endpoints/{endpoint}")
        except NotFound:
            return None

    def describe(self, endpoint: str) -> dict[str, Any] | None:
        """The endpoint as the serving API reports it (None if it, or its server, does not exist)."""
        workspace = self._workspace(start=False)
        return None if workspace is None else self._get(workspace.api_client, endpoint)

    def apply(self, endpoint: str, config: dict[str, Any]) -> dict[str, Any]:
        """Apply ``config`` (create the endpoint if needed) and wait until it is served."""
        client = self._workspace().api_client  # starts the local gateway if needed
        if self._get(client, endpoint) is None:
            client.do("POST", "/api/2.0/serving-endpoints", body={"name": endpoint, "config": config})
        else:
            client.do("PUT", f"/api/2.0/serving-endpoints/{endpoint}/config", body=config)
        deadline = time.monotonic() + self.ready_timeout_seconds
        while True:  # one client for the whole wait: no reconnect or liveness probe per poll
            state = self._get(client, endpoint)
            update = state["state"]["config_update"]
            if update == "NOT_UPDATING" and state["state"]["ready"] == "READY":
                return state
            if update in ("UPDATE_FAILED", "UPDATE_CANCELED"):
                raise EndpointUpdateFailed(
                    f"endpoint {endpoint}: {update}: {state.get('state_message') or 'see the endpoint logs'}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"endpoint {endpoint} not ready after {self.ready_timeout_seconds:.0f} s ({update})"
                )
            time.sleep(0.2)


class LocalServingBackend(ServingBackend):
    """The local gateway (``mlops_dagster.serving``), started in the background on first use."""

    host: str
    port: int  # 0: any free port, chosen when the gateway starts (it says which in its state folder)
    state_dir: str
    project: ResourceDependency[Project]
    """The project a gateway started from here serves: its exact settings, handed to the gateway's
    process. A dependency, not config: Dagster config cannot express every field of the schema."""

    @property
    def url(self) -> str | None:
        """Where this project's gateway serves (None: port 0 and no gateway started yet)."""
        from ..serving.server import gateway_url

        return gateway_url(self.host, self.port, self.state_dir)

    def _workspace(self, start: bool = True):
        from databricks.sdk import WorkspaceClient

        from ..serving.server import check_owner, ensure_running, is_up
        from ..serving.tokens import owner_token

        url = self.url
        if start:
            url = ensure_running(
                self.host, self.port, self.state_dir, self.project.model_dump_json(by_alias=True)
            )
        elif url is None or not is_up(url):
            return None
        else:
            check_owner(url, self.state_dir)
        # The rollout acts as the gateway's owner: a manage token kept in its state folder (0600).
        return WorkspaceClient(host=url, token=owner_token(self.state_dir), auth_type="pat")

    def invocation_url(self, endpoint: str) -> str:
        return f"{self.url}/serving-endpoints/{endpoint}/invocations"
