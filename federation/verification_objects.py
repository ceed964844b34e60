"""The shapes of Reef's Contribution and Verification objects (federation/verifications.py has the rules)."""
from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

from .jsonld import AS_CONTEXT, REEF_NS

CONTEXT = [AS_CONTEXT, {"reef": REEF_NS, "Contribution": "reef:Contribution", "Verification": "reef:Verification",
                        "contributionType": "reef:contributionType"}]


def contribution_url(cfg: Any, contribution_id: uuid.UUID | str) -> str:
    return f"{cfg.base_url}/contribution/{contribution_id}"


def verification_object(verifier_url: str, contribution: str, note: str | None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "type": "Verification",
        "id": f"{verifier_url}/verifications/{quote(contribution, safe='')}",
        "attributedTo": verifier_url,
        "object": contribution,
    }
    if note:
        obj["content"] = note
    return obj
