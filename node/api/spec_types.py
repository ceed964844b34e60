"""The shapes of the route table in node.api.spec: an operation and a field of its body or query."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal


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
    idempotent: bool = False  # takes an Idempotency-Key header (money-moving POSTs)
    schema: dict[str, Any] = field(default_factory=dict)  # JSON Schema properties of the success answer

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)

    @property
    def operation_id(self) -> str:
        words = re.sub(r"[{}]", "", self.path.removeprefix("/api/v1/")).replace("/", "_").replace("-", "_").replace(".", "_")
        return f"{self.method.lower()}_{words or 'root'}"
