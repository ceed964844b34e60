"""Every list the docs say pages carries next_cursor and has_more, and its next_cursor leads to the rest.

The table of paging lists is checked against the spec: any GET that takes `cursor` must be listed here (or name
the test file that pages it, where it needs a payment backend), so a new one cannot forget the pair."""
from __future__ import annotations

import json

from node.api.spec import OPERATIONS
from node.platform.appkeys import POOL
from tests.factories import auth, create_agent
from tests.test_notifications import _comment, _post, _submolt, api  # noqa: F401 - api is a fixture

# Lists that need payments set up to have two items; their own tests page them with next_cursor.
PAGED_ELSEWHERE = {
    "/api/v1/wallet/transactions": "tests/test_payments.py",
    "/api/v1/bounties": "tests/test_bounties.py",
    "/api/v1/wallet/approvals": "tests/test_spending_limits.py",  # needs an owner's limit and funds
}


async def _get(client, path: str, key: str | None, **params) -> dict:
    resp = await client.get(path, params=params, headers=auth(key) if key else {})
    assert resp.status == 200, f"{path}: {await resp.text()}"
    return await resp.json()


async def _ok(resp, *statuses: int) -> dict:
    assert resp.status in (statuses or (200, 201)), await resp.text()
    return await resp.json()


def _ids(body: dict, key: str) -> list[str]:
    """The items of a page, each as its whole JSON (items differ at least by their ids or their agent's)."""
    items = body[key]["items"] if isinstance(body[key], dict) else body[key]
    return [json.dumps(i, sort_keys=True) for i in items]


async def test_every_documented_page_carries_next_cursor_and_has_more(api):
    pool = api.server.app[POOL]
    (me, km), (a, ka), (b, kb) = [await create_agent(pool) for _ in range(3)]
    submolt = await _submolt(api, km)
    await _submolt(api, ka)
    posts = [await _post(api, km, submolt, f"reef memory {i}", "how agents handle memory") for i in range(2)]
    for text in ("one", "two"):
        await _comment(api, ka, posts[0], f"@{me.name} {text}")  # two comments, two notifications
    for key in (ka, kb):
        await _ok(await api.post(f"/api/v1/agents/{me.name}/follow", headers=auth(key)))
        await _ok(await api.post(f"/api/v1/agents/{me.name}/attest", json={"statement": "helpful"}, headers=auth(key)))
        await _ok(await api.post(f"/api/v1/posts/{posts[0]}/upvote", headers=auth(key)))
    for other in (a, b):
        await _ok(await api.post(f"/api/v1/agents/{other.name}/follow", headers=auth(km)))
    for other_key in (ka, kb):
        conv = (await _ok(await api.post("/api/v1/agents/dm/request", json={"to": me.name, "message": "hi"},
                                         headers=auth(other_key))))["conversation_id"]
        await _ok(await api.post(f"/api/v1/agents/dm/requests/{conv}/approve", headers=auth(km)))
    await _ok(await api.post(f"/api/v1/agents/dm/conversations/{conv}/send", json={"message": "more"}, headers=auth(kb)))
    group = (await _ok(await api.post("/api/v1/groups", json={"name": "g", "members": [a.name]}, headers=auth(km))))
    group_id = group["group"]["id"]
    for text in ("g1", "g2"):
        await _ok(await api.post(f"/api/v1/groups/{group_id}/messages", json={"content": text}, headers=auth(km)))
    for kind in ("code", "writing"):
        await _ok(await api.post("/api/v1/collaborations", json={
            "post_id": posts[0], "contribution_type": kind, "description": "did it"}, headers=auth(km)))

    # path -> (key, params, the list's name): each has two or more items, asked one at a time.
    lists = {
        "/api/v1/submolts": (None, {}, "submolts"),
        "/api/v1/posts": (None, {"sort": "new"}, "posts"),
        f"/api/v1/submolts/{submolt}/feed": (None, {"sort": "new"}, "posts"),
        "/api/v1/feed": (km, {"sort": "new"}, "posts"),
        f"/api/v1/posts/{posts[0]}/comments": (None, {"sort": "new"}, "comments"),
        f"/api/v1/agents/{me.name}/followers": (None, {}, "agents"),
        f"/api/v1/agents/{me.name}/following": (None, {}, "agents"),
        f"/api/v1/agents/{me.name}/attestations": (None, {}, "attestations"),
        "/api/v1/agents/leaderboard": (None, {}, "agents"),
        "/api/v1/search": (None, {"q": "reef memory", "type": "posts"}, "posts"),
        "/api/v1/agents/dm/conversations": (km, {}, "conversations"),
        f"/api/v1/agents/dm/conversations/{conv}": (km, {}, "messages"),
        f"/api/v1/groups/{group_id}/messages": (km, {}, "messages"),
        "/api/v1/notifications": (km, {}, "notifications"),
        "/api/v1/collaborations": (None, {"post_id": posts[0]}, "contributions"),
    }
    templates = {
        f"/api/v1/submolts/{submolt}/feed": "/api/v1/submolts/{name}/feed",
        f"/api/v1/posts/{posts[0]}/comments": "/api/v1/posts/{id}/comments",
        f"/api/v1/agents/{me.name}/followers": "/api/v1/agents/{name}/followers",
        f"/api/v1/agents/{me.name}/following": "/api/v1/agents/{name}/following",
        f"/api/v1/agents/{me.name}/attestations": "/api/v1/agents/{name}/attestations",
        f"/api/v1/agents/dm/conversations/{conv}": "/api/v1/agents/dm/conversations/{id}",
        f"/api/v1/groups/{group_id}/messages": "/api/v1/groups/{id}/messages",
    }
    cursor_routes = {op.path for op in OPERATIONS if op.method == "GET" and "cursor" in (op.query or {})}
    assert cursor_routes == {templates.get(p, p) for p in lists} | set(PAGED_ELSEWHERE)

    for path, (key, params, name) in lists.items():
        first = await _get(api, path, key, limit=1, **params)
        assert first["has_more"] is True and isinstance(first["next_cursor"], str), (path, first)
        rest = await _get(api, path, key, limit=100, cursor=first["next_cursor"], **params)
        assert rest["has_more"] is False and rest["next_cursor"] is None, path
        assert rest[name] and not set(_ids(first, name)) & set(_ids(rest, name)), path
        # The spec's answer names both.
        op = next(o for o in OPERATIONS if o.method == "GET" and o.path == templates.get(path, path))
        assert "next_cursor" in op.returns and "has_more" in op.returns, op.path


async def test_dm_shapes_carry_moltbooks_fields(api):
    pool = api.server.app[POOL]
    (a, ka), (b, kb) = [await create_agent(pool) for _ in range(2)]
    conv = (await _ok(await api.post("/api/v1/agents/dm/request", json={"to": b.name, "message": "hello"},
                                     headers=auth(ka))))["conversation_id"]
    requests = await _get(api, "/api/v1/agents/dm/requests", kb)
    assert set(requests["incoming"]) == set(requests["outgoing"]) == {"count", "description", "items", "requests",
                                                                      "has_more"}
    assert (requests["incoming"]["count"], requests["outgoing"]["count"]) == (1, 0)
    await _ok(await api.post(f"/api/v1/agents/dm/requests/{conv}/approve", headers=auth(kb)))
    await _ok(await api.post(f"/api/v1/agents/dm/conversations/{conv}/send", json={"message": "hi back"},
                             headers=auth(kb)))
    listed = await _get(api, "/api/v1/agents/dm/conversations", ka)
    assert {"inbox", "conversations", "next_cursor", "has_more"} <= set(listed)
    assert set(listed["conversations"]) == {"count", "items"}
    read = await _get(api, f"/api/v1/agents/dm/conversations/{conv}", ka)
    last = read["conversation"]["last_message"]
    assert (last["from"], last["to"], last["message"]) == (b.name, a.name, "hi back")
    assert [(m["from"], m["to"]) for m in read["messages"]] == [(a.name, b.name), (b.name, a.name)]
