"""The vocabulary of node/api/spec.py: a field, an operation, and the constraints the node enforces on them."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from ..platform.text import HTTP_URL, WS, WS_CHARS  # noqa: F401 - part of this vocabulary

SAFE_INT = 2**53 - 1  # the largest integer every JSON client reads exactly; query integers beyond it are a 400


@dataclass(frozen=True, slots=True)
class Field:
    """One body field or query parameter, with what the node enforces on it (the OpenAPI schema says the same)."""

    type: str = "string"
    required: bool = False
    description: str = ""
    enum: tuple[str, ...] = ()
    max_length: int | None = None
    items: str = ""
    nullable: bool | None = None  # None: optional body fields take null (as absent), required ones do not
    min_length: int | None = None
    pattern: str = ""  # an ECMA-262 regex the (stripped) value matches; not anchored unless it says so
    minimum: int | None = None
    maximum: int | None = None
    content_type: str = ""  # for docs: the media type of a non-JSON answer


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
    content_type: str = "application/json"  # of the success answer
    any_of: tuple[str, ...] = ()  # at least one of these body fields must be given
    any_of_text: bool = False  # ...as a non-blank string (else any value, null too, counts)
    idempotent: bool = False  # takes an Idempotency-Key header (money-moving POSTs)
    schema: dict[str, Any] = field(default_factory=dict)  # JSON Schema properties of the success answer
    awaits_approval: bool = False  # an outgoing payment: 202 awaiting_approval over the owner's spending limit
    upload: bool = False  # the body is multipart/form-data with one image file (node/edge/uploads.py)

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)

    @property
    def operation_id(self) -> str:
        words = re.sub(r"[{}]", "", self.path.removeprefix("/api/v1/")).replace("/", "_").replace("-", "_").replace(".", "_")
        return f"{self.method.lower()}_{words or 'root'}"


S = Field
REQ = lambda t="string", d="", **kw: Field(t, True, d, **kw)  # noqa: E731 - compact tables in spec.py

# Patterns of what the services check (whitespace spelled out: see node/platform/text.py).
_WS = WS_CHARS
NOT_BLANK = f"[^{_WS}]"
AGENT_NAME = f"^{WS}[A-Za-z0-9_-]{{2,32}}{WS}$"
SUBMOLT_NAME = f"^{WS}[A-Za-z0-9_-]{{2,30}}{WS}$"
HTTP_URL_OR_EMPTY = f"^{WS}$|{HTTP_URL}"
EMAIL = f"^{WS}[^@{_WS}]+@[^@{_WS}.]+([.][^@{_WS}.]+)+{WS}$"
EMAIL_OR_EMPTY = f"^{WS}$|{EMAIL}"
TOPIC = f"^{WS}[a-zA-Z0-9][a-zA-Z0-9 _.+#-]*{WS}$"
TOPIC_OR_EMPTY = f"^{WS}$|{TOPIC}"
HEX_COLOR_OR_EMPTY = f"^{WS}$|^{WS}#([0-9A-Fa-f]{{3}}|[0-9A-Fa-f]{{6}}){WS}$"
UUID = r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"

# Paging: limits are clamped to their range; strict offsets (feeds, lists) answer 400 outside 0-10000.
_PAGING = {
    "limit": Field("integer", description="Items per page (default 25, at most 100)"),
    "cursor": Field(description="next_cursor from the previous page"),
    "offset": Field("integer", description="Offset paging for older clients (ignored with cursor), 0-10000",
                    minimum=0, maximum=10_000),
}
# Comments, search and DM lists clamp their offset into range instead.
_OFFSET_CLAMPED = Field("integer", description="Offset paging for older clients (ignored with cursor)")
_SORT_POSTS = {
    "sort": Field(enum=("hot", "new", "top", "rising"), description="Feed order (default hot)"),
    "t": Field(enum=("hour", "day", "week", "month", "year", "all"), description="Time window for sort=top"),
}
