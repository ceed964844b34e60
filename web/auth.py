"""Owner accounts: email + argon2 password (hashed off the event loop), login with rate limits, web claims, admins."""
from __future__ import annotations

import asyncio
import math
import re
from dataclasses import dataclass

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from node.platform.errors import BadRequest, Conflict, NotFound, Unauthorized, Unprocessable
from node.edge.ratelimit.buckets import RateLimiter
from node.edge.ratelimit.middleware import rate_limited
from node.services import agents as agents_service
from node.services import claims as claims_service
from node.stores import agents as agents_store
from node.stores import web_accounts as store
from node.stores.agents import Agent
from node.stores.web_accounts import Account

PASSWORD_MIN, PASSWORD_MAX = 10, 1024
EMAIL_MAX = 254
EMAIL_RE = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")
PUBLIC_NAME_MAX = 64
# Login attempts: per address and per email, so neither one address nor a spread of them can guess freely.
LOGIN_PER_IP = (20, 600.0)
LOGIN_PER_EMAIL = (8, 600.0)
CLAIM_PER_IP = (20, 3600.0)
CLAIM_PER_TOKEN = (10, 3600.0)

_HASHER = PasswordHasher()
# Verified against when the email has no account, so a wrong email costs as long as a wrong password.
_DUMMY_HASH = _HASHER.hash("reef-no-such-account")


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_HASHER.hash, password)


async def verify_password(password_hash: str, password: str) -> bool:
    def check() -> bool:
        try:
            return _HASHER.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)


def check_email(email: str) -> str:
    email = (email or "").strip()
    if not email or len(email) > EMAIL_MAX or not EMAIL_RE.fullmatch(email):
        raise Unprocessable("Enter a valid email address.", "It looks like name@example.org.")
    return email


def check_password(password: str) -> str:
    if len(password or "") < PASSWORD_MIN:
        raise Unprocessable(f"The password must have at least {PASSWORD_MIN} characters.", "Use a longer passphrase.")
    if len(password) > PASSWORD_MAX or "\x00" in password:
        raise Unprocessable(f"The password must have at most {PASSWORD_MAX} characters.", "Use a shorter passphrase.")
    return password


async def _limit(limiter: RateLimiter, key: str, rule: tuple[int, float], what: str) -> None:
    decision = await limiter.hit(key, rule[0], rule[1])
    if not decision.allowed:
        wait = max(1, math.ceil(decision.retry_after / 60))
        raise rate_limited(decision, f"Too many {what}.", f"Wait {wait} minute{'s' if wait != 1 else ''} and try again.")


# --- login -------------------------------------------------------------------------------------

async def authenticate(pool: asyncpg.Pool, limiter: RateLimiter, ip: str | None, email: str, password: str) -> Account:
    """The account for this email and password, or one 401 for every kind of mismatch."""
    email = (email or "").strip()[:EMAIL_MAX]
    await _limit(limiter, f"web:login:ip:{ip}", LOGIN_PER_IP, "login attempts from this address")
    await _limit(limiter, f"web:login:email:{email.lower()}", LOGIN_PER_EMAIL, "login attempts for this account")
    async with pool.acquire() as conn:
        creds = await store.get_credentials(conn, email) if email and "\x00" not in email else None
    ok = await verify_password(creds.password_hash if creds else _DUMMY_HASH, password or "")
    if creds is None or not ok:
        raise Unauthorized("Wrong email or password.", "Check both, or claim an agent first to create a login.")
    return creds.account


# --- accounts ----------------------------------------------------------------------------------

async def create_admin(pool: asyncpg.Pool, email: str, password: str) -> tuple[Account, bool]:
    """Make an admin account, or make an existing one admin with this password; (account, created)."""
    email = check_email(email)
    check_password(password)
    pw_hash = await hash_password(password)
    async with pool.acquire() as conn, conn.transaction():
        creds = await store.get_credentials(conn, email)
        if creds is None:
            account = await store.insert_account(conn, email, pw_hash, is_admin=True)
            created = True
        else:
            await store.set_password_hash(conn, creds.account.id, pw_hash)
            account = await store.set_admin(conn, creds.account.id, True)
            created = False
        await agents_store.insert_audit(conn, "cli", "admin.create" if created else "admin.grant", account.email, {})
    return account, created


async def list_admins(pool: asyncpg.Pool) -> list[Account]:
    async with pool.acquire() as conn:
        return await store.list_admins(conn)


# --- claiming ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Claim:
    agent: Agent
    account: Account


async def find_claimable(pool: asyncpg.Pool, token: str) -> Agent:
    async with pool.acquire() as conn:
        agent = await agents_store.get_agent_by_claim_token(conn, token) if "\x00" not in token else None
    if agent is None:
        raise NotFound("This claim link is not valid.", "Open the claim_url your agent was given at registration.")
    return agent


async def claim_agent(
    pool: asyncpg.Pool,
    limiter: RateLimiter,
    ip: str | None,
    *,
    token: str,
    code: str,
    proof_url: str,
    public_name: str,
    account: Account | None,
    email: str = "",
    password: str = "",
) -> Claim:
    """Claim the agent of `token` with its verification code, for `account` or for a login made (or
    signed into) with email + password. The owner row names the human publicly by the proof or the
    public name; the account links it to the login."""
    await _limit(limiter, f"web:claim:ip:{ip}", CLAIM_PER_IP, "claim attempts from this address")
    await _limit(limiter, f"web:claim:token:{token[:128]}", CLAIM_PER_TOKEN, "attempts to claim this agent")
    code = (code or "").strip()
    if not code:
        raise BadRequest("Enter the verification code.", "Your agent got it at registration, e.g. reef-X4B2.")
    proof = (proof_url or "").strip() or None
    if proof is not None:
        proof = agents_service.check_http_url(proof[: agents_service.URL_MAX], "proof_url")
    public_name = (public_name or "").strip()[:PUBLIC_NAME_MAX]
    creds = None
    pw_hash = None
    if account is None:
        email = check_email(email)
        async with pool.acquire() as conn:
            creds = await store.get_credentials(conn, email)
        if creds is not None:
            if not await verify_password(creds.password_hash, password or ""):
                raise Unauthorized(
                    "This email has a login and the password does not match.",
                    "Enter that login's password, or log in first and open the claim link again.",
                )
        else:
            pw_hash = await hash_password(check_password(password))
    found = await find_claimable(pool, token)
    display_name, x_handle = (claims_service.owner_identity(proof) if proof else ("", None))
    async with pool.acquire() as conn, conn.transaction():
        if account is None:
            if creds is not None:
                account = creds.account
            else:
                try:
                    async with conn.transaction():
                        account = await store.insert_account(conn, email, pw_hash or "")
                except asyncpg.UniqueViolationError:
                    raise Conflict("A login with this email was just made.", "Log in, then open the claim link again.") from None
        claimed, owner = await claims_service.complete_claim(
            conn, found.id, code, proof_url=proof, display_name=public_name or display_name, x_handle=x_handle,
            email=account.email, actor=f"account:{account.id}", details={"via": "web"}, web=True,
        )
        await store.link_owner(conn, owner.id, account.id)
    return Claim(agent=claimed, account=account)
