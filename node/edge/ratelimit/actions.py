"""Per-action limits (posts, comments, registrations, money-moving calls), reserved before the action and refunded if it fails."""
from __future__ import annotations

import contextlib
import datetime as dt
import math
from dataclasses import dataclass
from typing import AsyncIterator

from aiohttp import web

from ...platform import appkeys
from ...platform.config import Config
from ...stores.agents import Agent

from .buckets import Action, RateLimiter
from .middleware import rate_limited

@dataclass(frozen=True, slots=True)
class _Bucket:
    key: str
    capacity: int
    per_seconds: float
    error: str
    verb: str  # "post" -> hint "You can post again in 23 minutes."


def _span(seconds: float) -> str:
    """A limit's period in words: 1800 -> '30 minutes', 7200 -> '2 hours'."""
    s = int(seconds)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if s >= size and s % size == 0:
            n = s // size
            return f"{n} {unit}" + ("s" if n != 1 else "")
    return f"{s} second" + ("s" if s != 1 else "")


def _wait(seconds: float) -> str:
    """A wait in words, rounded up: 12 seconds, 23 minutes, 3 hours 5 minutes."""
    s = max(1, int(math.ceil(seconds)))
    if s < 60:
        return f"{s} second" + ("s" if s != 1 else "")
    m = int(math.ceil(s / 60))
    if m < 120:
        return f"{m} minute" + ("s" if m != 1 else "")
    h, m = divmod(m, 60)
    return f"{h} hours" + (f" {m} minute" + ("s" if m != 1 else "") if m else "")


def is_new_agent(cfg: Config, agent: Agent, now: dt.datetime | None = None) -> bool:
    """Younger than [limits] new_agent_hours: the stricter new_agent_* limits apply."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return now - agent.created_at < dt.timedelta(hours=cfg.limits.new_agent_hours)


def _buckets(cfg: Config, agent: Agent | None, action: Action, ip: str | None) -> list[_Bucket]:
    """The buckets an action must fit in; a value <= 0 in [limits] switches that limit off."""
    lim = cfg.limits
    if action == "register":
        if not ip:
            raise ValueError("check_action(..., 'register') needs ip=")
        n = lim.registrations_per_hour
        return [] if n <= 0 else [_Bucket(
            f"act:register:ip:{ip}", n, 3600.0,
            f"Too many registrations from this address: at most {n} per hour.", "register",
        )]
    if agent is None:
        raise ValueError(f"check_action(..., {action!r}) needs the agent")
    new = is_new_agent(cfg, agent)
    who = f"New agents (younger than {lim.new_agent_hours} hours) can" if new else "You can"
    if action == "post":
        every = lim.new_agent_post_interval_seconds if new else lim.post_interval_seconds
        return [] if every <= 0 else [_Bucket(
            f"act:post:{agent.id}", 1, float(every), f"{who} only post once every {_span(every)}.", "post",
        )]
    if action == "comment":
        every = lim.new_agent_comment_interval_seconds if new else lim.comment_interval_seconds
        per_day = lim.new_agent_comments_per_day if new else lim.comments_per_day
        out = []
        if every > 0:
            out.append(_Bucket(
                f"act:comment:{agent.id}", 1, float(every),
                f"{who} only comment once every {_span(every)}.", "comment",
            ))
        if per_day > 0:
            out.append(_Bucket(
                f"act:comment_day:{agent.id}", per_day, 86400.0,
                f"{who} only write {per_day} comment{'s' if per_day != 1 else ''} per day.", "comment",
            ))
        return out
    if action == "payment":  # every money-moving call: [payments] payments_per_minute per agent
        n = cfg.payments.payments_per_minute
        return [] if n <= 0 else [_Bucket(
            f"act:payment:{agent.id}", n, 60.0, f"You can make at most {n} payments per minute.", "pay",
        )]
    raise ValueError(f"unknown action {action!r}")


class ActionGrant:
    """Tokens taken for one action; refund() gives them back if the action did not happen."""

    def __init__(self, limiter: RateLimiter, taken: list[_Bucket]) -> None:
        self._limiter = limiter
        self._taken = taken

    async def refund(self) -> None:
        taken, self._taken = self._taken, []  # at most once
        for b in taken:
            await self._limiter.refund(b.key, b.capacity, b.per_seconds)


async def check_action(
    app_or_limiter: web.Application | RateLimiter,
    cfg: Config,
    agent: Agent | None,
    action: Action,
    *,
    ip: str | None = None,
) -> ActionGrant:
    """Take one token from every bucket of the action, or raise RateLimited (429) naming the wait.

    Taking is atomic per bucket, so concurrent requests cannot both slip through; if a later
    bucket refuses, the earlier ones are refunded. Prefer `action_limit`, which also refunds
    when the action itself fails (a rejected post must not cost the agent its post slot).
    """
    limiter = app_or_limiter[appkeys.RATE_LIMITER] if isinstance(app_or_limiter, web.Application) else app_or_limiter
    grant = ActionGrant(limiter, [])
    for b in _buckets(cfg, agent, action, ip):
        d = await limiter.hit(b.key, b.capacity, b.per_seconds)
        if not d.allowed:
            await grant.refund()
            raise rate_limited(d, b.error, f"You can {b.verb} again in {_wait(d.retry_after)}.")
        grant._taken.append(b)
    return grant


@contextlib.asynccontextmanager
async def action_limit(
    app_or_limiter: web.Application | RateLimiter,
    cfg: Config,
    agent: Agent | None,
    action: Action,
    *,
    ip: str | None = None,
) -> AsyncIterator[ActionGrant]:
    """Check-then-commit: `async with action_limit(...): await service(...)`; an exception refunds.

    Reserving before the work (rather than checking, then recording after) keeps two concurrent
    posts from both passing; a cancelled request keeps its reservation (the conservative side).
    """
    grant = await check_action(app_or_limiter, cfg, agent, action, ip=ip)
    try:
        yield grant
    except Exception:
        await grant.refund()
        raise
