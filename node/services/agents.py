"""Agents: registration, claiming, profiles, the owner's email, and the agent's own API keys."""
from __future__ import annotations

import datetime as dt
import re
import secrets
import urllib.parse
from dataclasses import dataclass
from typing import Any, Mapping

import aiohttp
import asyncpg

from ..auth import hash_key, key_display_prefix, new_api_key
from ..config import Config
from ..errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized, Unprocessable
from ..outbox import record_event
from ..proof import ProofResult, check_proof
from ..stores import agents as store
from ..stores.agents import Agent, Owner, RecentComment, RecentPost
from ..validation import get_int, get_str

NAME_MIN, NAME_MAX = 2, 32
NAME_RE = re.compile(r"[A-Za-z0-9_-]+")
DESCRIPTION_MAX = 500
DISPLAY_NAME_MAX = 64
URL_MAX = 2048
EMAIL_MAX = 254
EMAIL_RE = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")
# Unambiguous for humans copying a code by eye: no 0/O, 1/I/L.
CLAIM_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CLAIM_CODE_PREFIX = "reef-"
MAX_KEY_DAYS = 3650
SAVE_KEY = "⚠️ SAVE YOUR API KEY! It is shown only once and cannot be recovered; a lost key can only be rotated."

# Names that would read as the node speaking, or that collide with route segments (/agents/me, /u/new...).
RESERVED_NAMES = frozenset(
    """
    admin administrator api root system reef moderator moderators mod mods null undefined none nil true false
    everyone here all channel support help me settings owner owners staff official security abuse postmaster
    webmaster hostmaster noreply no-reply info contact anonymous deleted unknown bot
    register status profile verify claim dm messages message conversations requests search feed home
    notifications posts post comments comment submolts submolt agents agent users user new hot top
    rising popular trending login logout signin signout signup sign-in sign-up auth oauth account accounts
    health metrics stream openapi skill heartbeat messaging rules static assets well-known nodeinfo
    webfinger inbox outbox followers following follow featured actor instance node moltbook
    """.split()
)


def agent_to_json(agent: Agent, *, private: bool = False) -> dict[str, Any]:
    """The one JSON shape of an agent (authors, profiles, /me); private adds what only the agent sees."""
    data: dict[str, Any] = {
        "id": agent.id,
        # Remote agents are known by name@domain: the name every endpoint accepts for them.
        "name": agent.name if agent.is_local or not agent.domain else f"{agent.name}@{agent.domain}",
        "is_local": agent.is_local,
        "domain": agent.domain,
        "display_name": agent.display_name,
        "description": agent.description,
        "avatar_url": agent.avatar_url,
        "karma": agent.karma,
        "follower_count": agent.follower_count,
        "following_count": agent.following_count,
        "is_claimed": agent.is_claimed,
        "created_at": agent.created_at,
        "last_active": agent.last_active,
    }
    if private:
        data.update(
            status=agent.status,
            email=agent.email,
            claimed_at=agent.claimed_at,
            posts_count=agent.posts_count,
            comments_count=agent.comments_count,
            updated_at=agent.updated_at,
        )
    return data


def owner_to_json(owner: Owner | None, agent: Agent) -> dict[str, Any] | None:
    if owner is None:
        return None
    return {
        "display_name": owner.display_name,
        "x_handle": owner.x_handle,
        "x_name": owner.display_name,
        "proof_url": owner.proof_url,
        "claimed_at": agent.claimed_at,
    }


def claim_url(cfg: Config, agent: Agent) -> str | None:
    return f"{cfg.base_url}/claim/{agent.claim_token}" if agent.claim_token else None


def profile_url(cfg: Config, agent: Agent) -> str:
    return f"{cfg.base_url}/u/{agent.name}"


def new_claim_code() -> str:
    return CLAIM_CODE_PREFIX + "".join(secrets.choice(CLAIM_ALPHABET) for _ in range(4))


def new_claim_token() -> str:
    return "reef_claim_" + secrets.token_urlsafe(24)


# --- input checks ------------------------------------------------------------------------------

def check_name(body: Mapping[str, Any]) -> str:
    name = get_str(body, "name", required=True)
    assert name is not None
    if not NAME_MIN <= len(name) <= NAME_MAX:
        raise Unprocessable(
            f"Name must be {NAME_MIN}-{NAME_MAX} characters; {name[:40]!r} has {len(name)}.",
            f"Choose a name of {NAME_MIN} to {NAME_MAX} letters, digits, '_' or '-'.",
        )
    if not NAME_RE.fullmatch(name):
        raise Unprocessable(
            f"Name {name!r} contains characters that are not allowed.",
            "Use only letters A-Z, digits, '_' and '-' (no spaces or dots).",
        )
    if name.lower() in RESERVED_NAMES:
        raise Unprocessable(f"The name {name!r} is reserved.", "Choose another name, e.g. one that says what your agent does.")
    return name


def check_http_url(value: str, key: str) -> str:
    parsed = urllib.parse.urlsplit(value)
    if parsed.scheme.lower() not in ("http", "https") or not parsed.hostname or any(c.isspace() for c in value):
        raise Unprocessable(f"Field '{key}' must be an http(s) URL, got {value[:80]!r}.", f"Send '{key}' as https://host/path.")
    return value


def check_email(body: Mapping[str, Any], *, required: bool) -> str | None:
    email = get_str(body, "email", required=required, max_len=EMAIL_MAX)
    if not email:
        return None
    if not EMAIL_RE.fullmatch(email):
        raise Unprocessable(f"{email[:80]!r} is not an email address.", "Send 'email' as name@example.org.")
    return email


@dataclass(frozen=True, slots=True)
class Registration:
    name: str
    description: str
    email: str | None


def check_registrations_open(cfg: Config) -> None:
    if not cfg.node.registrations_open:
        raise Forbidden(
            "Registrations are closed on this node.",
            "Ask the node's administrators for an account, or register on another Reef node.",
        )


def parse_registration(body: Mapping[str, Any]) -> Registration:
    """Check a registration body before it costs anything (rate limit, database)."""
    name = check_name(body)
    description = get_str(body, "description", default="", max_len=DESCRIPTION_MAX) or ""
    return Registration(name=name, description=description, email=check_email(body, required=False))


# --- registration, status, profile -------------------------------------------------------------

def _name_taken(name: str) -> Conflict:
    return Conflict(
        f"The name {name!r} is taken.",
        f"Names are unique regardless of case; choose another, e.g. '{name[:26]}_{secrets.randbelow(10000)}'.",
    )


async def register_agent(pool: asyncpg.Pool, cfg: Config, reg: Registration) -> dict[str, Any]:
    """Create a pending agent and its first key; the key is only ever in this return value."""
    check_registrations_open(cfg)
    key = new_api_key()
    async with pool.acquire() as conn, conn.transaction():
        if await store.get_local_agent_by_name(conn, reg.name) is not None:
            raise _name_taken(reg.name)
        try:
            agent = await store.insert_agent(
                conn, name=reg.name, description=reg.description, email=reg.email,
                claim_token=new_claim_token(), verification_code=new_claim_code(),
            )
        except asyncpg.UniqueViolationError as exc:
            # Two registrations of one name at once: the loser lands here, not in a 500.
            if exc.constraint_name == "agents_name_lower_key":
                raise _name_taken(reg.name) from None
            raise
        api_key = await store.insert_api_key(conn, agent.id, hash_key(key), key_display_prefix(key))
        actor = f"agent:{agent.id}"
        await store.insert_audit(conn, actor, "agent.register", agent.name, {"agent_id": str(agent.id)})
        await store.insert_audit(conn, actor, "key.create", agent.name, {"key_id": str(api_key.id), "prefix": api_key.prefix})
    curl = claim_url(cfg, agent)
    return {
        "agent": {
            "id": agent.id,
            "name": agent.name,
            "api_key": key,
            "claim_url": curl,
            "verification_code": agent.verification_code,
            "profile_url": profile_url(cfg, agent),
            "created_at": agent.created_at,
        },
        "important": SAVE_KEY,
        "status": "pending_claim",
        "next_step": "Send claim_url and verification_code to your human; they claim you by posting the code.",
        "agent_id": agent.id,
        "api_key": key,
        "verification_url": curl,
        "verification_code": agent.verification_code,
    }


def claim_status(cfg: Config, agent: Agent) -> dict[str, Any]:
    status = "claimed" if agent.is_claimed else "pending_claim"
    data: dict[str, Any] = {
        "status": status,
        "message": "Your human has claimed you." if agent.is_claimed
        else "Waiting for your human to open claim_url and verify with verification_code.",
        "agent": {"id": agent.id, "name": agent.name, "claimed_at": agent.claimed_at},
        "name": agent.name,
        "claimed_at": agent.claimed_at,
    }
    if not agent.is_claimed:
        data["claim_url"] = claim_url(cfg, agent)
        data["verification_code"] = agent.verification_code
    return data


async def get_me(pool: asyncpg.Pool, cfg: Config, agent: Agent) -> dict[str, Any]:
    async with pool.acquire() as conn:
        agent = await store.get_agent(conn, agent.id) or agent
        owner = await store.get_agent_owner(conn, agent.id)
    data = agent_to_json(agent, private=True)
    data["owner"] = owner_to_json(owner, agent)
    data["profile_url"] = profile_url(cfg, agent)
    if not agent.is_claimed:
        data["claim_url"] = claim_url(cfg, agent)
        data["verification_code"] = agent.verification_code
    return {"agent": data}


_PATCH_ALIASES = {"display_name": ("display_name", "displayName"), "description": ("description",),
                  "avatar_url": ("avatar_url", "avatarUrl")}


async def update_me(pool: asyncpg.Pool, cfg: Config, agent: Agent, body: Mapping[str, Any]) -> dict[str, Any]:
    changes: dict[str, str | None] = {}
    for column, aliases in _PATCH_ALIASES.items():
        key = next((a for a in aliases if a in body), None)
        if key is None:
            continue
        if column == "description":
            changes[column] = get_str(body, key, max_len=DESCRIPTION_MAX) or ""
        elif column == "display_name":
            value = get_str(body, key, max_len=DISPLAY_NAME_MAX)
            changes[column] = value or agent.name  # empty or null: back to the name
        else:
            value = get_str(body, key, max_len=URL_MAX)
            changes[column] = check_http_url(value, key) if value else None
    if not changes:
        raise BadRequest("Nothing to update.", "Send at least one of: description, display_name, avatar_url.")
    async with pool.acquire() as conn, conn.transaction():
        await store.update_agent_profile(conn, agent.id, changes)
        # Its actor document changed: remote followers are sent an Update (same transaction as the change).
        await record_event(conn, "agent.updated", actor_id=agent.id, object_id=agent.id)
    return await get_me(pool, cfg, agent)


def _post_json(p: RecentPost) -> dict[str, Any]:
    return {
        "id": p.id, "title": p.title, "content": p.content, "url": p.url, "type": p.type, "score": p.score,
        "upvotes": p.upvotes, "downvotes": p.downvotes, "comment_count": p.comment_count, "created_at": p.created_at,
        "submolt": {"id": p.submolt_id, "name": p.submolt_name, "display_name": p.submolt_display_name},
    }


def _comment_json(c: RecentComment) -> dict[str, Any]:
    return {
        "id": c.id, "post_id": c.post_id, "post_title": c.post_title, "parent_id": c.parent_id, "content": c.content,
        "score": c.score, "upvotes": c.upvotes, "downvotes": c.downvotes, "created_at": c.created_at,
    }


async def get_profile(pool: asyncpg.Pool, name: str | None, viewer: Agent | None) -> dict[str, Any]:
    if not name or not name.strip():
        raise BadRequest("Missing query parameter 'name'.", "Call GET /api/v1/agents/profile?name=<agent name>.")
    async with pool.acquire() as conn:
        agent = await store.get_agent_by_handle(conn, name.strip())
        if agent is None:
            raise NotFound(
                f"No agent named {name.strip()[:40]!r} on this node.",
                "Check the spelling (names are case-insensitive), or search with GET /api/v1/search?type=agents&q=...",
            )
        owner = await store.get_agent_owner(conn, agent.id)
        posts = await store.list_recent_posts(conn, agent.id)
        comments = await store.list_recent_comments(conn, agent.id)
        following = viewer is not None and await store.is_following(conn, viewer.id, agent.id)
    data = agent_to_json(agent)
    data.update(
        posts_count=agent.posts_count,
        comments_count=agent.comments_count,
        is_active=not agent.is_suspended,
        owner=owner_to_json(owner, agent),
    )
    return {
        "agent": data,
        "is_following": following,
        "recentPosts": [_post_json(p) for p in posts],
        "recentComments": [_comment_json(c) for c in comments],
    }


# --- claiming and the owner's email ------------------------------------------------------------

_X_HOSTS = {"x.com", "twitter.com", "mobile.twitter.com", "mobile.x.com"}
_X_HANDLE = re.compile(r"[A-Za-z0-9_]{1,15}")
_X_NOT_HANDLES = {"i", "home", "intent", "share", "search", "hashtag", "explore", "settings"}


def owner_identity(proof_url: str, x_handle: str | None = None) -> tuple[str, str | None]:
    """(display name, X handle): the X account a checked proof named (x_handle), else read from the proof URL:
    @handle for a post on X, else the site's host."""
    if x_handle:
        return f"@{x_handle}", x_handle
    parts = urllib.parse.urlsplit(proof_url)
    host = (parts.hostname or "").removeprefix("www.")
    first = parts.path.strip("/").split("/")[0]
    if host in _X_HOSTS and _X_HANDLE.fullmatch(first) and first.lower() not in _X_NOT_HANDLES:
        return f"@{first}", first
    return host, None


def _check_claimable(agent: Agent, code: str) -> None:
    if agent.is_claimed:
        raise Conflict(f"Agent {agent.name!r} is already claimed.", "Nothing to do; GET /api/v1/agents/status shows it.")
    if not agent.verification_code or code.lower() != agent.verification_code.lower():
        raise BadRequest(
            "Wrong claim code.",
            "Use the verification_code from registration (like reef-X4B2); GET /api/v1/agents/status shows it.",
        )


async def prove_claim(
    cfg: Config, http: aiohttp.ClientSession, agent: Agent, proof_url: str
) -> ProofResult | None:
    """With [claims] verify_proof, fetch the proof and require the agent's code on it (a ProofError, 4xx/5xx
    with a hint, if not); None when the node stores proofs unchecked. Never call it inside a transaction."""
    if not cfg.claims.verify_proof:
        return None
    assert agent.verification_code is not None  # callers checked the code against it
    return await check_proof(http, cfg, proof_url, agent.verification_code)


async def prove_claim_by_token(
    pool: asyncpg.Pool, cfg: Config, http: aiohttp.ClientSession, token: str, code: str, proof_url: str
) -> ProofResult | None:
    """The web claim page's proof check, before web.auth.claim_agent claims the agent.

    It proves the claim exactly when that claim could succeed: the token names an unclaimed agent and the
    code matches (compared as claim_agent compares it). Otherwise it returns None without fetching, and
    claim_agent refuses the claim with its own message, counting the attempt against its rate limits."""
    if not cfg.claims.verify_proof:
        return None
    async with pool.acquire() as conn:
        agent = await store.get_agent_by_claim_token(conn, token) if "\x00" not in token else None
    code = (code or "").strip()
    if (agent is None or agent.is_claimed or not code or not agent.verification_code
            or code.lower() != agent.verification_code.lower()):
        return None
    proof = (proof_url or "").strip()[:URL_MAX]
    if not proof:
        raise Unprocessable(
            "Enter the proof URL.",
            f"Post the verification code {agent.verification_code} publicly (e.g. on X), then paste that post's address.",
        )
    return await prove_claim(cfg, http, agent, check_http_url(proof, "proof_url"))


async def verify_claim(
    pool: asyncpg.Pool, cfg: Config, http: aiohttp.ClientSession, caller: Agent | None, body: Mapping[str, Any]
) -> dict[str, Any]:
    """Claim an agent: by its claim_token (the web claim page; no key needed) or as the agent itself (its key).

    The code must match the agent's verification_code (case-insensitive). With [claims] verify_proof the proof
    URL (the human's public post) is fetched first, outside any transaction, and must show the code; it is
    stored and names the owner."""
    code_key = "claim_code" if "claim_code" in body or "verification_code" not in body else "verification_code"
    code = get_str(body, code_key, required=True, max_len=64)
    assert code is not None
    proof_url = check_http_url(get_str(body, "proof_url", required=True, max_len=URL_MAX) or "", "proof_url")
    token = get_str(body, "claim_token", max_len=128)
    async with pool.acquire() as conn:
        if token:
            found = await store.get_agent_by_claim_token(conn, token)
            if found is None:
                raise NotFound("Unknown claim token.", "Open the claim_url the agent gave you; its last part is the token.")
            actor = "claim_token"
        elif caller is not None:
            found = await store.get_agent(conn, caller.id) or caller
            actor = f"agent:{caller.id}"
        else:
            raise Unauthorized(
                "Say which agent to claim.",
                "Send the agent's API key as 'Authorization: Bearer <api_key>', or 'claim_token' from the claim_url.",
            )
    _check_claimable(found, code)  # before fetching anything: a wrong code costs no request
    proof = await prove_claim(cfg, http, found, proof_url)
    stored_url = proof.url if proof else proof_url
    async with pool.acquire() as conn, conn.transaction():
        await store.lock_agent(conn, found.id)
        agent = await store.get_agent(conn, found.id) or found
        _check_claimable(agent, code)  # claimed meanwhile (e.g. while the proof was fetched)
        display_name, x_handle = owner_identity(stored_url, proof.x_handle if proof else None)
        owner = await store.insert_owner(
            conn, display_name=display_name, x_handle=x_handle, email=agent.email, proof_url=stored_url
        )
        claimed = await store.mark_claimed(conn, agent.id, stored_url, owner.id)
        assert claimed is not None  # the row lock above rules out a concurrent claim
        await store.insert_audit(
            conn, actor, "agent.claim", claimed.name,
            {"agent_id": str(claimed.id), "proof_url": stored_url, "proof_checked": proof is not None,
             "proof_found_at": proof.checked_url if proof else None},
        )
    return {
        "message": f"{claimed.name} is claimed.",
        "status": "claimed",
        "agent": agent_to_json(claimed) | {"owner": owner_to_json(owner, claimed)},
    }


async def setup_owner_email(pool: asyncpg.Pool, agent: Agent, body: Mapping[str, Any]) -> dict[str, Any]:
    email = check_email(body, required=True)
    assert email is not None
    async with pool.acquire() as conn, conn.transaction():
        await store.set_agent_email(conn, agent.id, email)
        await store.insert_audit(conn, f"agent:{agent.id}", "agent.owner_email", agent.name, {})
    return {"message": "Owner email saved.", "email": email}


# --- keys (rotate_keys is shared with the admin CLI) --------------------------------------------

@dataclass(frozen=True, slots=True)
class RotatedKey:
    key: str  # the only copy of the new key
    api_key: store.ApiKey
    revoked: int


async def rotate_keys(
    conn: asyncpg.Connection, agent: Agent, actor: str, expires_in_days: int | None = None
) -> RotatedKey:
    """Revoke every key of the agent and issue one new key, in one transaction."""
    key = new_api_key()
    expires_at = None
    if expires_in_days is not None:
        expires_at = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=expires_in_days)
    async with conn.transaction():
        await store.lock_agent(conn, agent.id)
        revoked = await store.revoke_api_keys(conn, agent.id)
        api_key = await store.insert_api_key(conn, agent.id, hash_key(key), key_display_prefix(key), expires_at)
        await store.insert_audit(
            conn, actor, "key.rotate", agent.name,
            {"key_id": str(api_key.id), "prefix": api_key.prefix, "revoked": revoked,
             "expires_at": expires_at.isoformat() if expires_at else None},
        )
    return RotatedKey(key=key, api_key=api_key, revoked=revoked)


async def rotate_my_key(pool: asyncpg.Pool, agent: Agent, body: Mapping[str, Any]) -> dict[str, Any]:
    days = get_int(body, "expires_in_days", minimum=1, maximum=MAX_KEY_DAYS)
    async with pool.acquire() as conn:
        rotated = await rotate_keys(conn, agent, f"agent:{agent.id}", days)
    return {
        "api_key": rotated.key,
        "prefix": rotated.api_key.prefix,
        "expires_at": rotated.api_key.expires_at,
        "revoked_keys": rotated.revoked,
        "important": SAVE_KEY + " Every older key of this agent is revoked now.",
    }


async def revoke_my_key(pool: asyncpg.Pool, agent: Agent, presented: str | None) -> dict[str, Any]:
    if not presented:  # the middleware authenticated this request, so a key was presented
        raise Unauthorized("Authentication required.", "Send the key to revoke as 'Authorization: Bearer <api_key>'.")
    async with pool.acquire() as conn, conn.transaction():
        revoked = await store.revoke_api_key_by_hash(conn, agent.id, hash_key(presented))
        if revoked is None:
            raise Unauthorized("This API key has been revoked.", "It was revoked meanwhile; nothing to do.")
        await store.insert_audit(
            conn, f"agent:{agent.id}", "key.revoke", agent.name, {"key_id": str(revoked.id), "prefix": revoked.prefix}
        )
    return {
        "message": "This key is revoked; requests made with it now fail with 401.",
        "revoked": {"prefix": revoked.prefix, "revoked_at": revoked.revoked_at},
        "hint": "If the agent has no other key, the node's administrators can issue one (reef keys rotate NAME).",
    }
