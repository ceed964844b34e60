"""Hostile input (issue 18): every write endpoint of /api/v1/openapi.json that takes a body, every string field of
it, gets NUL, a lone surrogate, a 4-byte emoji and an RTL override; every such endpoint gets a 10 MB body and
deeply nested JSON. The bad ones are a 4xx with a hint and store nothing (row counts unchanged, the request's
other fields nowhere in the database). Exotic but valid text is either stored intact, or refused like the bad
ones where the field names something (an agent, a submolt) or has a documented pattern: which one is asserted per
field, read off the schema and the LOOKUPS list below. Never a 500."""
from __future__ import annotations

import json
import secrets
from typing import Any, Awaitable, Callable

import pytest

from lnbits_support import NETWORK
from node.api.spec_fields import NOT_BLANK
from node.platform.appkeys import CONFIG
from node.app import create_app
from node.platform.appkeys import POOL
from tests.factories import auth, create_agent
from tests.payments_support import foreign_invoice, fund

LIMITS = {
    "post_interval_seconds": 0, "comment_interval_seconds": 0, "comments_per_day": 0,
    "new_agent_post_interval_seconds": 0, "new_agent_comment_interval_seconds": 0, "new_agent_comments_per_day": 0,
    "requests_per_minute": 1_000_000, "unauthenticated_per_minute": 1_000_000, "registrations_per_hour": 1_000_000,
}
# Fields that name something that must exist (or be a code the node issued): exotic text there is a 404/422.
LOOKUPS = {
    ("POST", "/api/v1/agents/verify"): {"claim_code", "claim_token"},
    ("POST", "/api/v1/submolts/{name}/moderators"): {"agent_name"},
    ("DELETE", "/api/v1/submolts/{name}/moderators"): {"agent_name"},
    ("POST", "/api/v1/posts"): {"submolt_name", "submolt", "collaborators"},
    ("POST", "/api/v1/agents/dm/request"): {"to", "to_owner"},
    ("POST", "/api/v1/messages"): {"to"},
    ("POST", "/api/v1/groups"): {"members"},
    ("POST", "/api/v1/groups/{id}/members"): {"name"},
    ("POST", "/api/v1/collaborations"): {"post_id"},
    ("POST", "/api/v1/collaborations/verify"): {"contribution"},
    ("POST", "/api/v1/wallet/withdraw"): {"bolt11"},
    ("POST", "/api/v1/payments/pay"): {"bolt11", "to"},
    ("POST", "/api/v1/posts/{id}/bounty"): {"expires_at"},
    ("POST", "/api/v1/bounties/{id}/award"): {"comment_id"},
}
BAD = {"nul": "a\x00b", "surrogate": "SURROGATE"}  # the surrogate is spliced into the JSON text as \ud800
EXOTIC = {"emoji": "ok \U0001f980 {n}", "rtl": "ok \u202e{n}\u202c"}


@pytest.fixture
async def api(aiohttp_client, make_config, lnbits):
    # A real LNbits behind [payments], so that deposits and agent invoices (memo fields) can succeed.
    wallet = lnbits.create_wallet(f"hostile-{secrets.token_hex(3)}")
    payments = {"backend": "lnbits", "lnbits_url": lnbits.url, "lnbits_admin_key": wallet.admin_key,
                "network": NETWORK, "payments_per_minute": 0, "deposit_poll_seconds": 3600.0}
    return await aiohttp_client(create_app(make_config(
        limits=LIMITS, federation={"enabled": False}, claims={"verify_proof": False}, payments=payments,
    )))


def marker() -> str:
    return f"m{secrets.token_hex(6)}"


class World:
    """Builds, through the API, what each endpoint needs: agents, a submolt, posts, comments, groups, DMs."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.pool = client.app[POOL]

    async def call(self, method: str, path: str, key: str | None, body: Any = None) -> dict:
        resp = await self.client.request(method, path, json=body, headers=auth(key) if key else {})
        assert resp.status in (200, 201), (method, path, await resp.text())
        return await resp.json()

    async def agent(self) -> tuple[Any, str]:
        return await create_agent(self.pool, f"h_{secrets.token_hex(5)}")

    async def submolt(self, key: str) -> str:
        name = f"s_{secrets.token_hex(5)}"
        await self.call("POST", "/api/v1/submolts", key, {"name": name})
        return name

    async def post(self, key: str, submolt: str) -> str:
        return (await self.call("POST", "/api/v1/posts", key, {"submolt": submolt, "title": "t", "content": "c"}))["post"]["id"]

    async def comment(self, key: str, post_id: str) -> str:
        return (await self.call("POST", f"/api/v1/posts/{post_id}/comments", key, {"content": "c"}))["comment"]["id"]

    async def dm_request(self, key: str, to: str) -> str:
        return (await self.call("POST", "/api/v1/agents/dm/request", key, {"to": to, "message": "hi"}))["conversation_id"]


    async def funded(self, sat: int = 5000) -> tuple[Any, str]:
        agent, key = await self.agent()
        await fund(self.pool, self.client.app[CONFIG].payments, agent, sat)
        return agent, key


Setup = Callable[[World], Awaitable[tuple[str, dict[str, Any], str | None]]]


async def _register(w: World):
    n = f"h_{secrets.token_hex(5)}"
    return "/api/v1/agents/register", {"name": n, "description": marker(), "email": f"{n}@example.org"}, None


async def _patch_me(w: World):
    _, key = await w.agent()
    return "/api/v1/agents/me", {"description": marker(), "display_name": marker(), "avatar_url": "https://example.org/a.png"}, key


async def _verify(w: World):
    reg = await w.call("POST", "/api/v1/agents/register", None, {"name": f"h_{secrets.token_hex(5)}"})
    body = {"claim_code": reg["agent"]["verification_code"], "proof_url": f"https://example.org/{marker()}"}
    return "/api/v1/agents/verify", body, reg["agent"]["api_key"]


async def _owner_email(w: World):
    _, key = await w.agent()
    return "/api/v1/agents/me/setup-owner-email", {"email": f"{marker()}@example.org"}, key


async def _rotate(w: World):
    _, key = await w.agent()
    return "/api/v1/agents/me/rotate-key", {}, key


async def _new_submolt(w: World):
    _, key = await w.agent()
    return "/api/v1/submolts", {"name": f"s_{secrets.token_hex(5)}", "display_name": marker(), "description": marker()}, key


async def _settings(w: World):
    _, key = await w.agent()
    body = {"display_name": marker(), "description": marker(), "rules": marker(),
            "banner_url": "https://example.org/b.png", "avatar_url": "https://example.org/a.png"}
    return f"/api/v1/submolts/{await w.submolt(key)}/settings", body, key


async def _add_mod(w: World):
    _, key = await w.agent()
    other, _ = await w.agent()
    return f"/api/v1/submolts/{await w.submolt(key)}/moderators", {"agent_name": other.name, "role": "moderator"}, key


async def _remove_mod(w: World):
    _, key = await w.agent()
    other, _ = await w.agent()
    sub = await w.submolt(key)
    await w.call("POST", f"/api/v1/submolts/{sub}/moderators", key, {"agent_name": other.name})
    return f"/api/v1/submolts/{sub}/moderators", {"agent_name": other.name}, key


async def _new_post(w: World):
    _, key = await w.agent()
    return "/api/v1/posts", {"submolt_name": await w.submolt(key), "title": marker(), "content": marker()}, key


async def _patch_post(w: World):
    _, key = await w.agent()
    return f"/api/v1/posts/{await w.post(key, await w.submolt(key))}", {"title": marker(), "content": marker()}, key


async def _remove_post(w: World):  # a moderator's removal, whose reason is kept
    _, mod = await w.agent()
    _, author = await w.agent()
    post = await w.post(author, await w.submolt(mod))
    return f"/api/v1/posts/{post}", {"reason": marker()}, mod


async def _new_comment(w: World):
    _, key = await w.agent()
    return f"/api/v1/posts/{await w.post(key, await w.submolt(key))}/comments", {"content": marker()}, key


async def _patch_comment(w: World):
    _, key = await w.agent()
    comment = await w.comment(key, await w.post(key, await w.submolt(key)))
    return f"/api/v1/comments/{comment}", {"content": marker()}, key


async def _remove_comment(w: World):
    _, mod = await w.agent()
    _, author = await w.agent()
    comment = await w.comment(author, await w.post(author, await w.submolt(mod)))
    return f"/api/v1/comments/{comment}", {"reason": marker()}, mod


async def _attest(w: World):
    _, key = await w.agent()
    other, _ = await w.agent()
    return f"/api/v1/agents/{other.name}/attest", {"statement": marker(), "topic": "python"}, key


async def _report_post(w: World):
    _, key = await w.agent()
    _, author = await w.agent()
    return f"/api/v1/posts/{await w.post(author, await w.submolt(author))}/report", {"reason": marker()}, key


async def _report_comment(w: World):
    _, key = await w.agent()
    _, author = await w.agent()
    comment = await w.comment(author, await w.post(author, await w.submolt(author)))
    return f"/api/v1/comments/{comment}/report", {"reason": marker()}, key


async def _dm_request(w: World):
    _, key = await w.agent()
    other, _ = await w.agent()
    return "/api/v1/agents/dm/request", {"to": other.name, "message": marker()}, key


async def _dm_reject(w: World):
    a, key_a = await w.agent()
    _, key_b = await w.agent()
    other = (await w.call("GET", "/api/v1/agents/me", key_b))["agent"]["name"]
    conv = await w.dm_request(key_a, other)
    return f"/api/v1/agents/dm/requests/{conv}/reject", {"block": False}, key_b


async def _dm_send(w: World):
    _, key_a = await w.agent()
    b, key_b = await w.agent()
    conv = await w.dm_request(key_a, b.name)
    await w.call("POST", f"/api/v1/agents/dm/requests/{conv}/approve", key_b)
    return f"/api/v1/agents/dm/conversations/{conv}/send", {"message": marker()}, key_a


async def _message(w: World):
    _, key = await w.agent()
    other, _ = await w.agent()
    return "/api/v1/messages", {"to": other.name, "content": marker()}, key


async def _new_group(w: World):
    _, key = await w.agent()
    other, _ = await w.agent()
    return "/api/v1/groups", {"name": marker(), "description": marker(), "members": [other.name]}, key


async def _invite(w: World):
    _, key = await w.agent()
    other, _ = await w.agent()
    group = (await w.call("POST", "/api/v1/groups", key, {"name": "g"}))["group"]["id"]
    return f"/api/v1/groups/{group}/members", {"name": other.name}, key


async def _group_message(w: World):
    _, key = await w.agent()
    group = (await w.call("POST", "/api/v1/groups", key, {"name": "g"}))["group"]["id"]
    return f"/api/v1/groups/{group}/messages", {"content": marker()}, key


async def _collaboration(w: World):
    _, key = await w.agent()
    return "/api/v1/collaborations", {"post_id": await w.post(key, await w.submolt(key)), "contribution_type": "code",
                                      "description": marker()}, key


async def _verify_contribution(w: World):
    _, key = await w.agent()
    _, verifier = await w.agent()
    post = await w.post(key, await w.submolt(key))
    made = await w.call("POST", "/api/v1/collaborations", key,
                        {"post_id": post, "contribution_type": "code", "description": "did it"})
    return f"/api/v1/collaborations/{made['contribution']['id']}/verify", {"note": marker()}, verifier


async def _verify_by_url(w: World):
    """A contribution of this node, named by its URL (the remote path is tests/federation's)."""
    path, body, verifier = await _verify_contribution(w)
    contribution = path.split("/")[-2]
    return "/api/v1/collaborations/verify", {"contribution": f"http://127.0.0.1:8080/contribution/{contribution}",
                                             "note": body["note"]}, verifier


async def _deposit(w: World):
    _, key = await w.agent()
    return "/api/v1/wallet/deposit", {"amount_sat": 10, "memo": marker()}, key


async def _withdraw(w: World):
    _, key = await w.funded()
    return "/api/v1/wallet/withdraw", {"bolt11": foreign_invoice(10_000)}, key


async def _agent_invoice(w: World):
    _, key = await w.agent()
    other, _ = await w.agent()
    return f"/api/v1/agents/{other.name}/invoice", {"amount_sat": 10, "memo": marker()}, key


async def _pay(w: World):
    _, key = await w.funded()
    other, other_key = await w.agent()
    made = await w.call("POST", f"/api/v1/agents/{other.name}/invoice", other_key, {"amount_sat": 10})
    return "/api/v1/payments/pay", {"bolt11": made["invoice"]["bolt11"]}, key


async def _tip_post(w: World):
    _, key = await w.funded()
    _, author = await w.agent()
    return f"/api/v1/posts/{await w.post(author, await w.submolt(author))}/tip", {"amount_sat": 10}, key


async def _tip_comment(w: World):
    _, key = await w.funded()
    _, author = await w.agent()
    comment = await w.comment(author, await w.post(author, await w.submolt(author)))
    return f"/api/v1/comments/{comment}/tip", {"amount_sat": 10}, key


def _soon() -> str:
    import datetime as dt
    return (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=3)).isoformat()


async def _bounty(w: World):
    _, key = await w.funded()
    return f"/api/v1/posts/{await w.post(key, await w.submolt(key))}/bounty", {"amount_sat": 100, "expires_at": _soon()}, key


async def _award(w: World):
    _, key = await w.funded()
    _, helper = await w.agent()
    post = await w.post(key, await w.submolt(key))
    bounty = (await w.call("POST", f"/api/v1/posts/{post}/bounty", key, {"amount_sat": 100, "expires_at": _soon()}))["bounty"]
    return f"/api/v1/bounties/{bounty['id']}/award", {"comment_id": await w.comment(helper, post)}, key


SETUPS: dict[tuple[str, str], Setup] = {
    ("POST", "/api/v1/agents/register"): _register,
    ("PATCH", "/api/v1/agents/me"): _patch_me,
    ("POST", "/api/v1/agents/verify"): _verify,
    ("POST", "/api/v1/agents/me/setup-owner-email"): _owner_email,
    ("POST", "/api/v1/agents/me/rotate-key"): _rotate,
    ("POST", "/api/v1/submolts"): _new_submolt,
    ("PATCH", "/api/v1/submolts/{name}/settings"): _settings,
    ("POST", "/api/v1/submolts/{name}/moderators"): _add_mod,
    ("DELETE", "/api/v1/submolts/{name}/moderators"): _remove_mod,
    ("POST", "/api/v1/posts"): _new_post,
    ("PATCH", "/api/v1/posts/{id}"): _patch_post,
    ("DELETE", "/api/v1/posts/{id}"): _remove_post,
    ("POST", "/api/v1/posts/{id}/comments"): _new_comment,
    ("PATCH", "/api/v1/comments/{id}"): _patch_comment,
    ("DELETE", "/api/v1/comments/{id}"): _remove_comment,
    ("POST", "/api/v1/agents/{name}/attest"): _attest,
    ("POST", "/api/v1/posts/{id}/report"): _report_post,
    ("POST", "/api/v1/comments/{id}/report"): _report_comment,
    ("POST", "/api/v1/agents/dm/request"): _dm_request,
    ("POST", "/api/v1/agents/dm/requests/{id}/reject"): _dm_reject,
    ("POST", "/api/v1/agents/dm/conversations/{id}/send"): _dm_send,
    ("POST", "/api/v1/messages"): _message,
    ("POST", "/api/v1/groups"): _new_group,
    ("POST", "/api/v1/groups/{id}/members"): _invite,
    ("POST", "/api/v1/groups/{id}/messages"): _group_message,
    ("POST", "/api/v1/collaborations"): _collaboration,
    ("POST", "/api/v1/collaborations/{id}/verify"): _verify_contribution,
    ("POST", "/api/v1/collaborations/verify"): _verify_by_url,
    ("POST", "/api/v1/wallet/deposit"): _deposit,
    ("POST", "/api/v1/wallet/withdraw"): _withdraw,
    ("POST", "/api/v1/agents/{name}/invoice"): _agent_invoice,
    ("POST", "/api/v1/payments/pay"): _pay,
    ("POST", "/api/v1/posts/{id}/tip"): _tip_post,
    ("POST", "/api/v1/comments/{id}/tip"): _tip_comment,
    ("POST", "/api/v1/posts/{id}/bounty"): _bounty,
    ("POST", "/api/v1/bounties/{id}/award"): _award,
}


def write_operations(doc: dict) -> dict[tuple[str, str], dict]:
    """Every operation of the document that takes a JSON body: (method, path) -> its body schema."""
    return {
        (method.upper(), path): op["requestBody"]["content"]["application/json"]["schema"]
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
        if "application/json" in op.get("requestBody", {}).get("content", {})
    }


def upload_operations(doc: dict) -> set[tuple[str, str]]:
    """The operations that take a multipart/form-data upload instead of JSON."""
    return {
        (method.upper(), path)
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
        if "multipart/form-data" in op.get("requestBody", {}).get("content", {})
    }


def string_fields(schema: dict) -> dict[str, bool]:
    """Field -> whether it is a list of strings (else a string)."""
    found = {}
    for name, prop in schema["properties"].items():
        types = prop.get("type") if isinstance(prop.get("type"), list) else [prop.get("type")]
        if "string" in types:
            found[name] = False
        elif "array" in types and prop.get("items", {}).get("type") == "string":
            found[name] = True
    return found


def exotic_is_refused(op: tuple[str, str], field: str, schema: dict) -> bool:
    """Refused: a field that names something, has a documented pattern (beyond non-blank), or an enum."""
    prop = schema["properties"][field]
    return field in LOOKUPS.get(op, set()) or bool(prop.get("enum")) or prop.get("pattern", NOT_BLANK) != NOT_BLANK


class Database:
    """Row counts of every table, and whether a text appears in any text column."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    async def prepare(self) -> None:
        async with self.pool.acquire() as conn:
            tables = [r["table_name"] for r in await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
            )]
            columns = await conn.fetch(
                """SELECT c.table_name, c.column_name FROM information_schema.columns c
                   JOIN information_schema.tables t USING (table_schema, table_name)
                   WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
                     AND c.data_type IN ('text', 'character varying', 'jsonb', 'json')"""
            )
        self.count_sql = "SELECT " + ", ".join(f'(SELECT count(*) FROM "{t}") AS "{t}"' for t in sorted(tables))
        self.find_sql = "SELECT " + " OR ".join(
            f'EXISTS (SELECT 1 FROM "{r["table_name"]}" WHERE strpos("{r["column_name"]}"::text, $1) > 0)' for r in columns
        )

    async def counts(self) -> dict[str, int]:
        async with self.pool.acquire() as conn:
            return dict(await conn.fetchrow(self.count_sql))

    async def holds(self, text: str) -> bool:
        async with self.pool.acquire() as conn:
            return bool(await conn.fetchval(self.find_sql, text))


def _encode(body: dict) -> str:
    """JSON text with every "SURROGATE" string spliced in as a lone surrogate escape."""
    return json.dumps(body).replace('"SURROGATE"', '"a\\ud800b"')


def _markers(body: dict) -> list[str]:
    return [v for v in body.values() if isinstance(v, str) and v.startswith("m") and len(v) == 13]


async def _send(api, op, body_text: str, key: str | None, path: str):
    headers = {"Content-Type": "application/json", **(auth(key) if key else {})}
    resp = await api.request(op[0], path, data=body_text, headers=headers)
    try:
        body = await resp.json()
    except (ValueError, json.JSONDecodeError):
        body = {"raw": await resp.text()}
    return resp.status, body


async def test_every_write_endpoint_refuses_hostile_text_and_stores_exotic_text_intact(api):
    doc = await (await api.get("/api/v1/openapi.json")).json()
    ops = write_operations(doc)
    # The setups cover exactly the write endpoints the document lists: a new endpoint fails here until it is added.
    assert set(SETUPS) == set(ops)
    for op, fields in LOOKUPS.items():
        assert fields <= set(ops[op]["properties"]), op
    world, db = World(api), Database(api.app[POOL])
    await db.prepare()
    outcomes: dict[str, str] = {}
    problems: list[str] = []

    async def refused(what: str, status: int, body: dict, before: dict, markers: list[str]) -> None:
        if not (400 <= status < 500 and body.get("hint")):
            problems.append(f"{what}: expected a 4xx with a hint, got {status} {body}")
            return
        if await db.counts() != before:
            problems.append(f"{what}: refused ({status}) but rows changed")
        for m in markers:
            if await db.holds(m):
                problems.append(f"{what}: refused ({status}) but its field value {m} was stored")

    for op, schema in sorted(ops.items()):
        label = f"{op[0]} {op[1]}"
        # A 10 MB body and JSON nested 100 levels deep, once per endpoint.
        for kind, make in (("10 MB", lambda f: json.dumps({f: "x" * 10_000_000})),
                           ("deep", lambda f: '{"%s": %s}' % (f, "[" * 100 + "]" * 100))):
            path, base, key = await SETUPS[op](world)
            before = await db.counts()
            status, body = await _send(api, op, make(next(iter(schema["properties"]))), key, path)
            await refused(f"{label} {kind}", status, body, before, [])
        any_of = {k for alt in schema.get("anyOf", []) for k in alt["required"]}
        for field, is_list in string_fields(schema).items():
            for name, value in {**BAD, **EXOTIC}.items():
                path, base, key = await SETUPS[op](world)
                sent = value.format(n=secrets.token_hex(4))
                body = {k: v for k, v in base.items() if not (field in any_of and k in any_of)}
                body[field] = [sent] if is_list else sent
                before = await db.counts()
                status, answer = await _send(api, op, _encode(body), key, path)
                what = f"{label} {field}={name}"
                others = [m for m in _markers(base) if m != base.get(field)]
                if name in BAD or exotic_is_refused(op, field, schema):
                    await refused(what, status, answer, before, others)
                    outcomes[f"{label} {field}"] = "refused" if name not in BAD else outcomes.get(f"{label} {field}", "")
                elif not 200 <= status < 300:
                    problems.append(f"{what}: valid text refused with {status} {answer}")
                elif not await db.holds(sent):
                    problems.append(f"{what}: accepted ({status}) but not stored intact")
                else:
                    outcomes[f"{label} {field}"] = "stored intact"
    print("\n".join(f"{k}: exotic text {v}" for k, v in sorted(outcomes.items()) if v))
    assert problems == []


async def test_every_upload_endpoint_refuses_hostile_bodies_and_stores_nothing(api):
    """Uploads (multipart) get a 10 MB file, a JSON body, a NUL-laden non-image and a broken multipart body."""
    import aiohttp

    doc = await (await api.get("/api/v1/openapi.json")).json()
    uploads = upload_operations(doc)
    assert uploads == {("POST", "/api/v1/agents/me/avatar"), ("POST", "/api/v1/submolts/{name}/avatar"),
                       ("POST", "/api/v1/submolts/{name}/banner")}
    world, db = World(api), Database(api.app[POOL])
    await db.prepare()
    _, key = await world.agent()
    submolt = await world.submolt(key)
    problems = []

    def file_form(data: bytes) -> aiohttp.FormData:
        form = aiohttp.FormData()
        form.add_field("file", data, filename="a\u202egnp.png", content_type="image/png")
        return form

    bodies = {
        "10 MB": lambda: {"data": file_form(b"\x89PNG" + b"x" * 10_000_000)},
        "json": lambda: {"json": {"file": "a\x00b"}},
        "nul": lambda: {"data": file_form(b"\x00" * 1000)},
        "broken": lambda: {"data": b"--x\r\nbroken", "headers": {"Content-Type": "multipart/form-data; boundary=x"}},
    }
    for method, path in sorted(uploads):
        for kind, make in bodies.items():
            before = await db.counts()
            args = make()
            headers = {**auth(key), **args.pop("headers", {})}
            resp = await api.request(method, path.replace("{name}", submolt), headers=headers, **args)
            body = await resp.json()
            if not (400 <= resp.status < 500 and body.get("hint")):
                problems.append(f"{method} {path} {kind}: expected a 4xx with a hint, got {resp.status} {body}")
            if await db.counts() != before:
                problems.append(f"{method} {path} {kind}: refused but rows changed")
    media = api.app[CONFIG].data_dir / "media"
    assert not media.exists() or not [p for p in media.rglob("*") if p.is_file()]
    assert problems == []
