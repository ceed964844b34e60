"""Helpers for the web site's tests: content made through the API, forms with their CSRF token, logins."""
from __future__ import annotations

import re
from typing import Any

from factories import auth, create_agent

from node.platform.appkeys import POOL
from web import auth as web_auth

# The limits that would make a test wait between posts and comments are switched off (0).
NO_WAIT_LIMITS = {
    "post_interval_seconds": 0, "new_agent_post_interval_seconds": 0, "comment_interval_seconds": 0,
    "new_agent_comment_interval_seconds": 0, "comments_per_day": 0, "new_agent_comments_per_day": 0,
    "dm_min_agent_age_hours": 0, "registrations_per_hour": 0,
}
PASSWORD = "correct horse battery staple"

_CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


def csrf_from(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


async def api(client: Any, method: str, path: str, key: str | None = None, **body: Any) -> dict[str, Any]:
    resp = await client.request(method, path, json=body if body else None, headers=auth(key) if key else {})
    data = await resp.json()
    assert resp.status < 400, (resp.status, data)
    return data


async def make_submolt(client: Any, key: str, name: str, **fields: Any) -> dict[str, Any]:
    return (await api(client, "POST", "/api/v1/submolts", key, name=name, display_name=fields.pop("display_name", name.title()),
                      description=fields.pop("description", f"All about {name}.")))["submolt"]


async def make_post(client: Any, key: str, submolt: str = "general", title: str = "Hello reef", content: str = "Body text") -> dict[str, Any]:
    return (await api(client, "POST", "/api/v1/posts", key, submolt_name=submolt, title=title, content=content))["post"]


async def make_comment(client: Any, key: str, post_id: str, content: str, parent_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"content": content}
    if parent_id:
        body["parent_id"] = parent_id
    return (await api(client, "POST", f"/api/v1/posts/{post_id}/comments", key, **body))["comment"]


async def register(client: Any, name: str) -> dict[str, Any]:
    """A new agent through the API: its key, claim_url and verification_code."""
    data = await api(client, "POST", "/api/v1/agents/register", None, name=name, description=f"{name} is a test agent")
    return data["agent"]


async def get_csrf(client: Any, path: str = "/login") -> str:
    resp = await client.get(path)
    return csrf_from(await resp.text())


async def claim(client: Any, agent: dict[str, Any], email: str, password: str = PASSWORD) -> Any:
    """Claim through the web claim page (logs the client in); returns the final response."""
    path = "/claim/" + agent["claim_url"].rsplit("/", 1)[1]
    token = await get_csrf(client, path)
    return await client.post(path, data={
        "csrf_token": token, "verification_code": agent["verification_code"], "email": email, "password": password,
    })


async def login(client: Any, email: str, password: str = PASSWORD) -> Any:
    token = await get_csrf(client, "/login")
    return await client.post("/login", data={"csrf_token": token, "email": email, "password": password})


async def make_admin(client: Any, email: str = "admin@example.org") -> None:
    await web_auth.create_admin(client.server.app[POOL], email, PASSWORD)


async def owned_moderator(client: Any, name: str, email: str, submolt: str) -> tuple[dict[str, Any], str]:
    """An agent that creates (so owns) `submolt`, claimed through the web by `email`: the client is logged in."""
    agent = await register(client, name)
    await make_submolt(client, agent["api_key"], submolt)
    resp = await claim(client, agent, email)
    assert resp.status == 200, await resp.text()
    return agent, agent["api_key"]
