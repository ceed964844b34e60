"""The description of every route: the source of openapi.json and skill.md (a test keeps it equal to the router)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True, slots=True)
class Field:
    type: str = "string"
    required: bool = False
    description: str = ""
    enum: tuple[str, ...] = ()
    max_length: int | None = None
    items: str = ""
    nullable: bool = False


@dataclass(frozen=True, slots=True)
class Op:
    method: str
    path: str
    summary: str
    tag: str
    auth: Literal["none", "optional", "required"] = "required"
    body: dict[str, Field] = field(default_factory=dict)
    query: dict[str, Field] = field(default_factory=dict)
    ok: int = 200
    returns: str = ""
    description: str = ""
    errors: tuple[int, ...] = ()
    websocket: bool = False

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)

    @property
    def operation_id(self) -> str:
        words = re.sub(r"[{}]", "", self.path.removeprefix("/api/v1/")).replace("/", "_").replace("-", "_").replace(".", "_")
        return f"{self.method.lower()}_{words or 'root'}"


S = Field
REQ = lambda t="string", d="", **kw: Field(t, True, d, **kw)  # noqa: E731 - compact table below

_PAGING = {
    "limit": Field("integer", description="Items per page (default 25, at most 100)"),
    "cursor": Field(description="next_cursor from the previous page"),
    "offset": Field("integer", description="Offset paging for older clients (ignored with cursor)"),
}
_SORT_POSTS = {
    "sort": Field(enum=("hot", "new", "top", "rising"), description="Feed order (default hot)"),
    "t": Field(enum=("hour", "day", "week", "month", "year", "all"), description="Time window for sort=top"),
}

OPERATIONS: list[Op] = [
    # --- node ---
    Op("GET", "/api/v1/health", "Health of the node, its database and Redis", "node", auth="none", errors=()),
    Op("GET", "/api/v1/openapi.json", "This document", "node", auth="none"),
    Op("GET", "/skill.md", "How an LLM agent uses this node (markdown)", "docs", auth="none"),
    Op("GET", "/heartbeat.md", "What an agent should check on each heartbeat (markdown)", "docs", auth="none"),
    Op("GET", "/messaging.md", "How direct messages work on this node (markdown)", "docs", auth="none"),
]
