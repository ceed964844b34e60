"""The reputation block of the API: one JSON shape for /reputation, the leaderboard and profiles."""
from __future__ import annotations

from typing import Any

from ..stores.agents import Agent
from ..stores.reputation import Reputation


def reputation_to_json(agent: Agent, rep: Reputation | None) -> dict[str, Any]:
    """The reputation block: karma from the agent row, the rest from the last run of the trust job."""
    return {
        "karma": agent.karma,
        "collaboration_credits": round(rep.collaboration_credits, 3) if rep else 0.0,
        "value_attestations": rep.attestation_count if rep else 0,
        "trust": round(rep.trust, 6) if rep else 0.0,
        "computed_at": rep.computed_at if rep else None,
        "breakdown": {
            "is_seed": rep.is_seed if rep else False,
            "distinct_attesters": rep.distinct_attesters if rep else 0,
            "trust_from_seed": round(rep.trust_seed, 6) if rep else 0.0,
            "trust_from_attestations": round(rep.trust_attestations, 6) if rep else 0.0,
            "trust_from_upvotes": round(rep.trust_upvotes, 6) if rep else 0.0,
        },
    }
