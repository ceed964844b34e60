"""Disk space of the data directory's file system, for /api/v1/health and /metrics."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class DiskUsage:
    path: str  # the directory measured: the data dir, or its nearest existing parent before it is created
    total: int
    free: int  # available to the node's (unprivileged) user

    @property
    def free_ratio(self) -> float:
        return self.free / self.total if self.total else 0.0


def disk_usage(data_dir: str | os.PathLike[str]) -> DiskUsage:
    path = Path(data_dir)
    while not path.exists() and path != path.parent:
        path = path.parent
    st = os.statvfs(path)
    return DiskUsage(str(path), st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize)
