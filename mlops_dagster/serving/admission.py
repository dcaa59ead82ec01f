"""Admission: how many requests an endpoint holds at once, and the 429 past that.

Without a bound, requests that arrive faster than the model scores them wait without limit:
latency and memory grow until the machine gives out. Databricks answers an endpoint's overload
with 429 ``REQUEST_LIMIT_EXCEEDED``; the local gateway does the same past
``serving.max_queued_requests`` requests waiting or being scored, at once and without a model
call, with a ``Retry-After`` of about how long the requests it holds take.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator

from .payload import BadRequest

RETRY_AFTER_MAX_SECONDS = 60


class Overloaded(BadRequest):
    """The endpoint holds as many requests as it may: a 429 with ``Retry-After`` seconds."""

    def __init__(self, endpoint: str, bound: int, retry_after: int):
        super().__init__(
            f"endpoint {endpoint!r} is at its limit of {bound} requests waiting or being scored "
            f"(serving.max_queued_requests): retry after {retry_after} s",
            status=429,
            error_code="REQUEST_LIMIT_EXCEEDED",
        )
        self.retry_after = retry_after


class Admission:
    """Counts one endpoint's requests from admission to answer, refusing past ``bound``.

    Runs on the event loop only (no lock): entering and leaving are synchronous and never await.
    """

    def __init__(self, endpoint: str, bound: int, smoothing: float = 0.2):
        if bound < 1:
            raise ValueError(f"the bound must be at least 1 request, not {bound}")
        self.endpoint, self.bound, self.smoothing = endpoint, bound, smoothing
        self.held = 0  # admitted and not answered yet: waiting, parsed, or being scored
        self.refused = 0
        self.seconds = 0.0  # a moving average of how long an admitted request is held

    def retry_after(self) -> int:
        """Whole seconds, at least 1: a request refused now finds room about when the requests
        held now have been answered, which takes about as long as recent ones took."""
        return min(RETRY_AFTER_MAX_SECONDS, max(1, math.ceil(self.seconds)))

    @contextlib.contextmanager
    def admit(self) -> Iterator[None]:
        """Hold a place for the ``with`` block, or raise ``Overloaded`` when there is none."""
        if self.held >= self.bound:
            self.refused += 1
            raise Overloaded(self.endpoint, self.bound, self.retry_after())
        self.held += 1
        started = time.perf_counter()
        try:
            yield
        finally:
            self.held -= 1
            took = time.perf_counter() - started
            self.seconds += self.smoothing * (took - self.seconds)
