"""Every route of the Agent API, registered in one place."""
from __future__ import annotations

from aiohttp import web

from . import agents, health, openapi
from . import search
from . import comments, votes
from . import posts, submolts
from . import feeds, follows
from . import messages, groups, notifications
from . import home
from . import reports


def setup(app: web.Application) -> None:
    health.setup(app)
    agents.setup(app)
    search.setup(app)
    comments.setup(app)
    votes.setup(app)
    submolts.setup(app)
    posts.setup(app)
    feeds.setup(app)
    follows.setup(app)
    messages.setup(app)
    groups.setup(app)
    notifications.setup(app)
    home.setup(app)
    reports.setup(app)
    openapi.setup(app)
