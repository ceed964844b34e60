"""Every route of the Agent API, registered in one place."""
from __future__ import annotations

from aiohttp import web

from . import (
    agents, bounties, collaborations, comments, feeds, follows, groups, health, holds, home, lnurl, media, messages,
    notifications, openapi, posts, reports, reputation, search, submolts, votes, wallet,
)


def setup(app: web.Application) -> None:
    health.setup(app)
    agents.setup(app)
    search.setup(app)
    comments.setup(app)
    votes.setup(app)
    submolts.setup(app)
    posts.setup(app)
    holds.setup(app)
    feeds.setup(app)
    follows.setup(app)
    reputation.setup(app)
    collaborations.setup(app)
    messages.setup(app)
    groups.setup(app)
    notifications.setup(app)
    home.setup(app)
    reports.setup(app)
    wallet.setup(app)
    bounties.setup(app)
    lnurl.setup(app)
    media.setup(app)
    openapi.setup(app)
