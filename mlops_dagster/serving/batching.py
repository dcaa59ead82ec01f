"""Dynamic batching for the serving gateway: a loaded model and the batcher that scores the requests
queued for it together, one model call serving every request that arrived while the previous call ran."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .payload import Column


@dataclass
class LoadedModel:
    """What the loader returns for ``entity_name`` / ``entity_version``."""

    model: Any  # has predict_method(DataFrame)
    columns: list[Column]  # from the model signature
    example: list[list[Any]]  # rows for the smoke test (the logged input example)
    predict_method: str = "predict_proba"  # a classifier's probabilities; "predict": a regressor's numbers

    def predict(self, frame) -> Any:
        return getattr(self.model, self.predict_method)(frame)


def score_rows(model: Any, method: str, names: list[str], rows: list[list[Any]]) -> list:
    """``rows`` (columns ``names``) scored by ``model``'s ``method``, in this process. A fitted model
    and inputs already checked against its signature: scikit-learn's per-call parameter validation
    and finiteness scan are skipped (the imputers handle missing values)."""
    import pandas as pd
    import sklearn

    frame = pd.DataFrame(rows, columns=names)
    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        return getattr(model, method)(frame).tolist()


class Batcher:
    """Scores queued requests for one model together: up to ``parallel`` model calls at a time
    (each serving every request that queued while the others ran), by ``score(rows)`` (blocking,
    e.g. a model worker process) or, without it, in this process."""

    def __init__(
        self,
        model: LoadedModel,
        executor: ThreadPoolExecutor,
        max_rows: int = 4096,
        score: Callable[[list[list[Any]]], list] | None = None,
        parallel: int = 1,
    ):
        self.model, self.names, self.executor, self.max_rows = (
            model,
            [c.name for c in model.columns],
            executor,
            max_rows,
        )
        self.score, self.parallel = score, parallel
        self.queue: list[tuple[list[list[Any]], asyncio.Future]] = []
        self.running = 0

    def _predict(self, rows: list[list[Any]]) -> list:
        if self.score is not None:
            return self.score(rows)
        return score_rows(self.model.model, self.model.predict_method, self.names, rows)

    async def predict(self, rows: list[list[Any]]) -> list:
        future = asyncio.get_running_loop().create_future()
        self.queue.append((rows, future))
        if self.running < self.parallel:
            self.running += 1
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self.queue:
                batch, size = [], 0
                while self.queue and (not batch or size + len(self.queue[0][0]) <= self.max_rows):
                    rows, future = self.queue.pop(0)
                    batch.append((rows, future))
                    size += len(rows)
                try:
                    scores = await loop.run_in_executor(
                        self.executor, self._predict, [r for rows, _ in batch for r in rows]
                    )
                except Exception as exc:  # the model failed on this batch: every caller hears why
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                offset = 0
                for rows, future in batch:
                    if not future.done():
                        future.set_result(scores[offset : offset + len(rows)])
                    offset += len(rows)
        finally:
            self.running -= 1
