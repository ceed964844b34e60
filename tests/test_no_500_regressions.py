"""Issue 18: the five inputs fuzzing found that answered 500 (or a broken document) now answer a 4xx with a hint."""
from __future__ import annotations

import pytest

from node.app import create_app
from node.platform.appkeys import POOL
from tests.factories import auth, create_agent


@pytest.fixture
async def api(aiohttp_client, make_config):
    return await aiohttp_client(create_app(make_config()))


async def _refused(resp, status: int) -> dict:
    body = await resp.json()
    assert resp.status == status, body
    assert body["success"] is False and body["error"] and body["hint"], body
    return body


async def test_1_notification_id_with_a_non_ascii_digit_is_404(api):
    _, key = await create_agent(api.app[POOL])
    for raw in ("%C2%B3", "%D9%A1", "%EF%BC%91", "1%C2%B3"):  # ³, Arabic-Indic one, fullwidth one
        await _refused(await api.post(f"/api/v1/notifications/{raw}/read", headers=auth(key)), 404)
    await _refused(await api.post("/api/v1/notifications/1/read", headers=auth(key)), 404)  # digits: just unknown


async def test_2_lone_surrogate_in_a_json_string_is_422_naming_the_field(api):
    pool = api.app[POOL]
    _, key = await create_agent(pool)
    raw = '{"name": "surrogate_agent", "description": "x\\ud800y"}'
    body = await _refused(
        await api.post("/api/v1/agents/register", data=raw, headers={"Content-Type": "application/json"}), 422
    )
    assert "'description'" in body["error"] and "surrogate" in body["error"]
    raw = '{"submolt": "general", "title": "t", "content": "\\udfff", "collaborators": ["a\\ud83d"]}'
    body = await _refused(
        await api.post("/api/v1/posts", data=raw, headers={**auth(key), "Content-Type": "application/json"}), 422
    )
    assert "'content'" in body["error"]
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM agents WHERE name = 'surrogate_agent'") == 0
        assert await conn.fetchval("SELECT count(*) FROM posts") == 0
    # the surrogate or NUL in a key: the error names it escaped (the answer must stay valid UTF-8)
    for raw in ('{"a\\ud800": 1}', '{"x": {"k\\u0000": "v"}}', '{"' + "k" * 5000 + '": "\\udfff"}'):
        body = await _refused(
            await api.post("/api/v1/agents/register", data=raw, headers={"Content-Type": "application/json"}), 422
        )
        assert len(body["error"]) < 400 and ("\\ud800" in body["error"] or "\\u0000" in body["error"] or "..." in body["error"])
    # a proper pair is a character like any other
    raw = '{"name": "pair_agent", "description": "\\ud83d\\ude00"}'
    resp = await api.post("/api/v1/agents/register", data=raw, headers={"Content-Type": "application/json"})
    assert resp.status == 201, await resp.text()


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/api/v1/agents/profile?name=a%00b"),
        ("POST", "/api/v1/agents/a%00b/follow"),
        ("DELETE", "/api/v1/agents/a%00b/follow"),
        ("GET", "/api/v1/agents/a%00b/followers"),
        ("GET", "/api/v1/agents/a%00b/following"),
        ("GET", "/api/v1/agents/a%00b/reputation"),
        ("GET", "/api/v1/agents/a%00b@example.org/followers"),
        ("GET", "/api/v1/messages/thread/a%00b"),
        ("GET", "/api/v1/submolts/a%00b"),
        ("GET", "/api/v1/submolts/a%00b@example.org/feed"),
    ],
)
async def test_3_nul_in_an_agent_or_submolt_name_is_404(api, method, path):
    _, key = await create_agent(api.app[POOL])
    await _refused(await api.request(method, path, headers=auth(key)), 404)


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/u/a%00b"), ("GET", "/u/a%00b/followers"), ("GET", "/m/a%00b"), ("GET", "/m/a%00b/featured"),
        ("GET", "/.well-known/webfinger?resource=acct:a%00b@127.0.0.1:8080"),
        ("GET", "/s/a%00b"), ("GET", "/agents/a%00b"),
        ("GET", "/api/v1/search?q=a%00b"), ("GET", "/api/v1/posts?submolt=a%00b"),
        ("DELETE", "/api/v1/groups/00000000-0000-0000-0000-000000000000/members/a%00b"),
        ("POST", "/api/v1/agents/a%00b/attest"), ("DELETE", "/api/v1/agents/a%00b/attest?topic=a%00b"),
        ("GET", "/api/v1/agents/a%00b/attestations"), ("DELETE", "/api/v1/submolts/general/moderators?agent_name=a%00b"),
        ("POST", "/api/v1/submolts/a%00b/subscribe"), ("GET", "/api/v1/agents/profile?name=%ED%A0%80"),
        ("GET", "/api/v1/groups/00000000-0000-0000-0000-000000000000/messages?cursor=99999999999999999999"),
    ],
)
async def test_3_nul_in_a_name_anywhere_else_is_a_4xx(api, method, path):
    """The same NUL through the federation endpoints, the web pages and the other API routes that take names
    (search alone reads NUL as a space and answers 200)."""
    _, key = await create_agent(api.app[POOL])
    resp = await api.request(method, path, headers=auth(key), json={"statement": "x"} if method == "POST" else None)
    expected = range(200, 300) if "/search" in path else range(400, 500)
    assert resp.status in expected, (resp.status, await resp.text())


async def test_4_deeply_nested_json_is_400_before_parsing(api):
    for doc in ("[" * 1100, "[" * 1100 + "]" * 1100, '{"name": ' + "[" * 40 + "]" * 40 + "}"):
        body = await _refused(
            await api.post("/api/v1/agents/register", data=doc, headers={"Content-Type": "application/json"}), 400
        )
        assert "32 levels" in body["error"]
    # brackets inside strings are text, not nesting
    doc = '{"name": "deep_text", "description": "' + "[{" * 100 + '\\"]"}'
    resp = await api.post("/api/v1/agents/register", data=doc, headers={"Content-Type": "application/json"})
    assert resp.status == 201, await resp.text()


async def test_5_every_reference_in_the_openapi_document_resolves(api):
    doc = await (await api.get("/api/v1/openapi.json")).json()
    refs: set[str] = set()

    def walk(value):
        if isinstance(value, dict):
            if isinstance(value.get("$ref"), str):
                refs.add(value["$ref"])
            for child in value.values():
                walk(child)
        elif isinstance(value, list):
            for child in value:
                walk(child)

    walk(doc)
    assert "#/components/responses/E502" in refs and "#/components/responses/E504" in refs
    for ref in refs:
        target = doc
        for part in ref.removeprefix("#/").split("/"):
            assert part in target, ref
            target = target[part]
