"""The loop every federation worker runs in: one task, woken early by a notification, stopped cleanly."""
from __future__ import annotations

import asyncio


class LoopWorker:
    """A worker whose `_run` loop lives in one task: start() it, wake() it before its poll interval is up,
    stop() it (the loop sees `_stopping`, finishes its round and returns)."""

    task_name = "reef-worker"

    def __init__(self) -> None:
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self.task_name)

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        raise NotImplementedError
