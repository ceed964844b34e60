"""Owners over HTTP: the claim page, logins and sessions, CSRF, the dashboard (DM requests, conversations, keys)."""
from __future__ import annotations

import pytest
from web_support import (
    NO_WAIT_LIMITS, PASSWORD, api, claim, csrf_from, get_csrf, login, make_post, register,
)

from node.app import create_app
from node.platform.appkeys import POOL
from web.sessions import COOKIE


@pytest.fixture
async def site(aiohttp_client, make_config):
    # Claims without proof checks (verify_proof off): these tests are about the page, logins and sessions;
    # test_claim_proof.py claims with proofs that are fetched.
    return await aiohttp_client(create_app(make_config(limits=NO_WAIT_LIMITS, claims={"verify_proof": False})))


def _claim_path(agent: dict) -> str:
    return "/claim/" + agent["claim_url"].rsplit("/", 1)[1]


async def _status(client, key: str) -> str:
    return (await api(client, "GET", "/api/v1/agents/status", key))["status"]


async def test_claim_page_claims_with_the_code_and_makes_a_login(site):
    agent = await register(site, "claimable")
    assert agent["claim_url"].startswith("http://127.0.0.1:8080/claim/reef_claim_")
    path = _claim_path(agent)
    page = await site.get(path)
    html = await page.text()
    assert page.status == 200 and "Claim claimable" in html and 'name="verification_code"' in html
    assert page.headers["Cache-Control"] == "no-store"
    token = csrf_from(html)

    wrong = await site.post(path, data={"csrf_token": token, "verification_code": "reef-NOPE",
                                        "email": "human@example.org", "password": PASSWORD})
    assert wrong.status == 400 and "Wrong verification code." in await wrong.text()
    assert await _status(site, agent["api_key"]) == "pending_claim"

    done = await site.post(path, data={"csrf_token": token, "verification_code": agent["verification_code"].lower(),
                                       "proof_url": "https://x.com/humanhandle/status/1", "public_name": "",
                                       "email": "human@example.org", "password": PASSWORD}, allow_redirects=False)
    assert done.status == 303 and done.headers["Location"] == "/dashboard/agents/claimable?claimed=1"
    cookie = done.cookies[COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and not cookie["secure"] and cookie["path"] == "/"
    assert await _status(site, agent["api_key"]) == "claimed"
    dash = await site.get("/dashboard/agents/claimable?claimed=1", allow_redirects=False)
    assert dash.status == 200 and "Claimed: this agent is yours now." in await dash.text()
    profile = await (await site.get("/agents/claimable")).text()
    assert "✓ Verified" in profile and "@humanhandle" in profile and 'href="https://x.com/humanhandle/status/1"' in profile
    again = await (await site.get(path)).text()
    assert "is already claimed" in again


async def test_a_second_claim_joins_the_same_login(site):
    first, second, third = [await register(site, n) for n in ("first_bot", "second_bot", "third_bot")]
    assert (await claim(site, first, "owner@example.org")).status == 200
    # Logged in: no email or password asked; the agent joins the account.
    page = await (await site.get(_claim_path(second))).text()
    assert 'name="password"' not in page and "You are logged in as" in page
    resp = await site.post(_claim_path(second), data={"csrf_token": csrf_from(page),
                                                      "verification_code": second["verification_code"]})
    assert resp.status == 200
    dash = await (await site.get("/dashboard")).text()
    assert "first_bot" in dash and "second_bot" in dash
    # Logged out, an existing email needs its password; a wrong one claims nothing.
    site.session.cookie_jar.clear()
    wrong = await claim(site, third, "owner@example.org", password="not the password at all")
    assert wrong.status == 401 and "password does not match" in await wrong.text()
    assert await _status(site, third["api_key"]) == "pending_claim"
    assert (await claim(site, third, "OWNER@example.org")).status == 200
    assert "third_bot" in await (await site.get("/dashboard")).text()


async def test_claim_checks_proof_url_and_password_length(site):
    agent = await register(site, "picky")
    token = await get_csrf(site, _claim_path(agent))
    bad_proof = await site.post(_claim_path(agent), data={
        "csrf_token": token, "verification_code": agent["verification_code"], "proof_url": "javascript:alert(1)",
        "email": "p@example.org", "password": PASSWORD})
    assert bad_proof.status == 422 and "proof_url" in await bad_proof.text()
    short = await site.post(_claim_path(agent), data={
        "csrf_token": token, "verification_code": agent["verification_code"], "email": "p@example.org", "password": "short"})
    assert short.status == 422 and "at least 10 characters" in await short.text()
    assert (await site.get("/claim/reef_claim_nope")).status == 404


async def test_login_logout_and_the_session_cookie(site):
    agent = await register(site, "loginbot")
    await claim(site, agent, "login@example.org")
    site.session.cookie_jar.clear()
    to_login = await site.get("/dashboard", allow_redirects=False)
    assert to_login.status == 303 and to_login.headers["Location"] == "/login?next=/dashboard"
    bad = await login(site, "login@example.org", "wrong password here")
    assert bad.status == 401 and "Wrong email or password." in await bad.text()
    unknown = await login(site, "nobody@example.org")
    assert unknown.status == 401 and "Wrong email or password." in await unknown.text()
    ok = await login(site, "login@example.org")
    assert ok.status == 200 and str(ok.url).endswith("/dashboard") and "loginbot" in await ok.text()
    stolen = site.session.cookie_jar.filter_cookies(site.make_url("/"))[COOKIE].value
    token = csrf_from(await (await site.get("/dashboard")).text())
    out = await site.post("/logout", data={"csrf_token": token}, allow_redirects=False)
    assert out.status == 303 and out.headers["Location"] == "/"
    # The old cookie no longer logs anyone in: the session row is gone.
    site.session.cookie_jar.clear()
    replay = await site.get("/dashboard", cookies={COOKIE: stolen}, allow_redirects=False)
    assert replay.status == 303


async def test_tampered_or_forged_cookies_are_ignored(site):
    await site.get("/")
    value = site.session.cookie_jar.filter_cookies(site.make_url("/"))[COOKIE].value
    payload, _, mac = value.rpartition(".")
    forged = "u" + payload[1:] + "." + mac  # an anonymous token relabelled as a login
    site.session.cookie_jar.clear()
    resp = await site.get("/dashboard", cookies={COOKIE: forged}, allow_redirects=False)
    assert resp.status == 303
    resp = await site.get("/dashboard", cookies={COOKIE: "u:x:99999999999.AAAA"}, allow_redirects=False)
    assert resp.status == 303


async def test_session_cookie_is_secure_when_the_node_serves_https(aiohttp_client, make_config):
    site = await aiohttp_client(create_app(make_config(node={"https": True, "domain": "reef.example"})))
    resp = await site.get("/")
    assert resp.cookies[COOKIE]["secure"]


async def test_forms_without_a_valid_csrf_token_are_refused(site):
    agent = await register(site, "csrfbot")
    await claim(site, agent, "csrf@example.org")
    for data in ({}, {"csrf_token": "0" * 40}):
        resp = await site.post("/dashboard/agents/csrfbot/keys/revoke", data=data)
        assert resp.status == 403 and "did not come from this site" in await resp.text()
    token = csrf_from(await (await site.get("/dashboard")).text())
    cross = await site.post("/dashboard/agents/csrfbot/keys/revoke", data={"csrf_token": token},
                            headers={"Origin": "https://evil.example"})
    assert cross.status == 403
    assert (await api(site, "GET", "/api/v1/agents/me", agent["api_key"]))["agent"]["name"] == "csrfbot"  # key still works
    # Another visitor's token does not fit this session.
    other = await get_csrf(site, "/")
    assert other == token
    site.session.cookie_jar.clear()
    assert (await site.post("/login", data={"csrf_token": token, "email": "csrf@example.org", "password": PASSWORD})).status == 403


async def test_login_is_rate_limited(site):
    token = await get_csrf(site, "/login")
    statuses = []
    for _ in range(9):
        resp = await site.post("/login", data={"csrf_token": token, "email": "victim@example.org", "password": "guess guess"})
        statuses.append(resp.status)
    assert statuses[:8] == [401] * 8 and statuses[8] == 429
    assert "Retry-After" in resp.headers and "Too many login attempts" in await resp.text()


async def test_owner_answers_dm_requests_and_reads_conversations_read_only(site):
    mine = await register(site, "ownedbot")
    asker = await register(site, "askerbot")
    rude = await register(site, "rudebot")
    await claim(site, mine, "dm@example.org")
    asked = await api(site, "POST", "/api/v1/agents/dm/request", asker["api_key"], to="ownedbot", message="Hi, can we talk?")
    await api(site, "POST", "/api/v1/agents/dm/request", rude["api_key"], to="ownedbot", message="<b>buy</b> now")
    html = await (await site.get("/dashboard/agents/ownedbot")).text()
    assert "Hi, can we talk?" in html and "&lt;b&gt;buy&lt;/b&gt; now" in html
    token = csrf_from(html)
    conv = asked["conversation_id"]
    resp = await site.post(f"/dashboard/agents/ownedbot/requests/{conv}/approve", data={"csrf_token": token})
    assert resp.status == 200 and "Request approved" in await resp.text()
    sent = await api(site, "POST", f"/api/v1/agents/dm/conversations/{conv}/send", asker["api_key"], message="Thanks!")
    assert sent["message"]["message"] == "Thanks!"
    rude_conv = (await api(site, "GET", "/api/v1/agents/dm/requests", mine["api_key"]))["requests"][0]["conversation_id"]
    resp = await site.post(f"/dashboard/agents/ownedbot/requests/{rude_conv}/reject", data={"csrf_token": token, "block": "on"})
    assert "cannot ask again" in await resp.text()
    again = await site.request("POST", "/api/v1/agents/dm/request", json={"to": "ownedbot", "message": "again"},
                                      headers={"Authorization": f"Bearer {rude['api_key']}"})
    assert again.status == 403
    page = await (await site.get(f"/dashboard/agents/ownedbot/conversations/{conv}")).text()
    assert "Thanks!" in page and "Hi, can we talk?" in page
    listed = (await api(site, "GET", "/api/v1/agents/dm/conversations", mine["api_key"]))["conversations"]["items"]
    assert listed[0]["unread_count"] == 1  # the human's reading did not mark it read for the agent


async def test_key_rotation_shows_the_key_once_and_revocation_stops_the_agent(site):
    agent = await register(site, "keyed")
    await claim(site, agent, "keys@example.org")
    token = csrf_from(await (await site.get("/dashboard/agents/keyed")).text())
    resp = await site.post("/dashboard/agents/keyed/keys/rotate", data={"csrf_token": token})
    html = await resp.text()
    assert resp.status == 200 and resp.headers["Cache-Control"] == "no-store"
    new_key = html.split('id="new-key" class="key" value="', 1)[1].split('"', 1)[0]
    assert new_key.startswith("reef_sk_") and "shown only once" in html
    old = await site.get("/api/v1/agents/me", headers={"Authorization": f"Bearer {agent['api_key']}"})
    assert old.status == 401
    assert (await api(site, "GET", "/api/v1/agents/me", new_key))["agent"]["name"] == "keyed"
    dash = await (await site.get("/dashboard/agents/keyed")).text()
    assert new_key not in dash and new_key[:14] in dash  # only the prefix, never the key again
    await site.post("/dashboard/agents/keyed/keys/revoke", data={"csrf_token": token})
    assert (await site.get("/api/v1/agents/me", headers={"Authorization": f"Bearer {new_key}"})).status == 401
    async with site.server.app[POOL].acquire() as conn:
        actors = await conn.fetch("SELECT action, actor FROM audit_log WHERE target = 'keyed' ORDER BY id")
    assert [r["action"] for r in actors][-2:] == ["key.rotate", "key.revoke_all"]
    assert all(r["actor"].startswith("account:") for r in actors[-2:])


async def test_owners_see_only_their_own_agents(site):
    mine = await register(site, "minebot")
    theirs = await register(site, "theirbot")
    await claim(site, theirs, "them@example.org")
    site.session.cookie_jar.clear()
    await claim(site, mine, "me@example.org")
    assert (await site.get("/dashboard/agents/theirbot")).status == 404
    token = csrf_from(await (await site.get("/dashboard")).text())
    assert (await site.post("/dashboard/agents/theirbot/keys/rotate", data={"csrf_token": token})).status == 404
    assert (await api(site, "GET", "/api/v1/agents/me", theirs["api_key"]))["agent"]["name"] == "theirbot"


async def test_notifications_show_on_the_agent_dashboard(site):
    mine = await register(site, "notified")
    other = await register(site, "replier")
    await claim(site, mine, "notes@example.org")
    post = await make_post(site, mine["api_key"], title="Tell me")
    await api(site, "POST", f"/api/v1/posts/{post['id']}/comments", other["api_key"], content="A reply")
    html = await (await site.get("/dashboard/agents/notified")).text()
    assert "reply post" in html and "replier" in html and f'href="/posts/{post["id"]}"' in html


async def test_an_expired_session_logs_out(site):
    agent = await register(site, "expiring")
    await claim(site, agent, "expiring@example.org")
    assert (await site.get("/dashboard", allow_redirects=False)).status == 200
    async with site.server.app[POOL].acquire() as conn:
        await conn.execute("UPDATE web_sessions SET expires_at = now() - interval '1 second'")
    resp = await site.get("/dashboard", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/login")
