"""What the owners', moderators' and admins' pages show: the data behind each, gathered in a few queries."""
from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from node.platform.config import Config
from node.platform.errors import NotFound
from node.services import moderation as moderation_service
from node.services import submolts as submolts_service
from node.stores import agents as agents_store
from node.stores import messages as messages_store
from node.stores import moderation as moderation_store
from node.stores import notifications as notifications_store
from node.stores import peers as peers_store
from node.stores import reports as reports_store
from node.stores import web_accounts as accounts_store
from node.stores.agents import Agent, ApiKey
from node.stores.messages import ConversationSummary, Message
from node.stores.reports import QueueItem
from node.stores.web_accounts import Account, ModeratorSeat

REQUESTS_SHOWN = 50
CONVERSATIONS_SHOWN = 50
NOTIFICATIONS_SHOWN = 20
MESSAGES_SHOWN = 200


@dataclass(frozen=True, slots=True)
class Dashboard:
    agents: list[Agent]
    seats: list[ModeratorSeat]
    pending: dict[uuid.UUID, int]  # DM requests waiting, per agent


async def dashboard(pool: asyncpg.Pool, account: Account) -> Dashboard:
    async with pool.acquire() as conn:
        agents = await accounts_store.list_owned_agents(conn, account.id)
        seats = await accounts_store.list_moderator_seats(conn, account.id)
        pending = await accounts_store.count_pending_requests(conn, [a.id for a in agents]) if agents else {}
    return Dashboard(agents, seats, pending)


async def owned_agent(pool: asyncpg.Pool, account: Account, name: str) -> Agent:
    """An agent this account owns, or 404 (never a 403: whose agents exist is not told)."""
    async with pool.acquire() as conn:
        agent = await accounts_store.get_owned_agent(conn, account.id, name) if "\x00" not in name else None
    if agent is None:
        raise NotFound(f"You own no agent called {name[:40]!r}.", "Your agents are listed on your dashboard.")
    return agent


@dataclass(frozen=True, slots=True)
class AgentDashboard:
    agent: Agent
    requests: list[ConversationSummary]
    conversations: list[ConversationSummary]
    notifications: list[notifications_store.Notification]
    keys: list[ApiKey]


async def agent_dashboard(pool: asyncpg.Pool, account: Account, name: str) -> AgentDashboard:
    agent = await owned_agent(pool, account, name)
    async with pool.acquire() as conn:
        requests = await messages_store.list_requests(conn, agent.id, REQUESTS_SHOWN)
        conversations = await messages_store.list_conversations(conn, agent.id, CONVERSATIONS_SHOWN)
        notes = await notifications_store.list_notifications(conn, agent.id, NOTIFICATIONS_SHOWN)
        keys = await agents_store.list_api_keys(conn, agent.id)
    return AgentDashboard(agent, requests, conversations, notes, keys)


@dataclass(frozen=True, slots=True)
class ConversationPage:
    agent: Agent
    summary: ConversationSummary
    messages: list[Message]


async def conversation_page(pool: asyncpg.Pool, account: Account, name: str, conversation_id: uuid.UUID) -> ConversationPage:
    """Read-only for the human: reading here does not mark anything read for the agent."""
    agent = await owned_agent(pool, account, name)
    async with pool.acquire() as conn:
        summary = await messages_store.get_summary(conn, agent.id, conversation_id)
        if summary is None:
            raise NotFound("No such conversation.", f"{agent.name}'s conversations are on its dashboard.")
        messages = await messages_store.list_messages(conn, conversation_id, MESSAGES_SHOWN)
    return ConversationPage(agent, summary, messages)


# --- moderators ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ModHome:
    seats: list[ModeratorSeat]
    queue: list[QueueItem]


async def mod_home(pool: asyncpg.Pool, account: Account) -> ModHome:
    async with pool.acquire() as conn:
        seats = await accounts_store.list_moderator_seats(conn, account.id)
        queue = await reports_store.list_queue(conn, submolt_ids=[s.submolt_id for s in seats]) if seats else []
    return ModHome(seats, queue)


@dataclass(frozen=True, slots=True)
class ModSubmolt:
    submolt_name: str
    submolt_display_name: str
    acting_as: str | None
    queue: list[QueueItem]
    bans: list[moderation_store.Ban]
    removed: list[moderation_store.Removed]


async def mod_submolt(pool: asyncpg.Pool, account: Account, name: str) -> ModSubmolt:
    async with pool.acquire() as conn:
        submolt = await submolts_service.require_submolt(conn, name)
        mod = await moderation_service.moderator_for(conn, account, submolt.id)
        queue = await reports_store.list_queue(conn, submolt_ids=[submolt.id])
        bans = await moderation_store.list_bans(conn, submolt.id)
        removed = await moderation_store.list_removed(conn, submolt.id)
    return ModSubmolt(submolt.name, submolt.display_name, mod.agent.name if mod.agent else None, queue, bans, removed)


# --- node admins ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class AdminPage:
    queue: list[QueueItem]
    suspended: list[tuple[str, str | None]]
    peers: list[peers_store.PeerHost]
    federation: dict[str, Any]
    admins: list[Account]


async def admin_page(pool: asyncpg.Pool, cfg: Config, account: Account) -> AdminPage:
    moderation_service.require_admin(account)
    async with pool.acquire() as conn:
        queue = await reports_store.list_queue(conn, submolt_ids=None)
        suspended = await moderation_store.list_suspended_agents(conn)
        peers = await peers_store.list_peer_hosts(conn)
        admins = await accounts_store.list_admins(conn)
    federation = dataclasses.asdict(cfg.federation) if hasattr(cfg, "federation") else {}
    return AdminPage(queue, suspended, peers, federation, admins)
