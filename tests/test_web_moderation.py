"""Moderation over HTTP: the reports API, the moderators' queue and actions, bans, node admins, `reef admin`."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from web_support import (
    NO_WAIT_LIMITS, PASSWORD, api, claim, csrf_from, login, make_admin, make_comment, make_post, make_submolt,
    owned_moderator, register,
)

from node.app import create_app
from node.platform.appkeys import POOL

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
async def site(aiohttp_client, make_config):
    # Owners claim without a proof page here (verify_proof off): these tests are about moderation.
    return await aiohttp_client(create_app(make_config(limits=NO_WAIT_LIMITS, claims={"verify_proof": False})))


async def _raw(client, method: str, path: str, key: str | None = None, **body):
    resp = await client.request(method, path, json=body or None, headers={"Authorization": f"Bearer {key}"} if key else {})
    return resp.status, await resp.json()


async def _token(client, path: str = "/dashboard") -> str:
    return csrf_from(await (await client.get(path)).text())


# --- the reports API -----------------------------------------------------------------------------

async def test_agents_report_posts_and_comments_once_each(site):
    author = await register(site, "reported")
    reporter = await register(site, "reporter")
    post = await make_post(site, author["api_key"], title="Spammy")
    comment = await make_comment(site, author["api_key"], post["id"], "buy buy buy")
    status, body = await _raw(site, "POST", f"/api/v1/posts/{post['id']}/report", reporter["api_key"], reason="spam")
    assert status == 201 and body["action"] == "reported" and body["report"]["status"] == "open"
    status, again = await _raw(site, "POST", f"/api/v1/posts/{post['id']}/report", reporter["api_key"], reason="more spam")
    assert status == 200 and again["action"] == "already_reported" and again["report"]["id"] == body["report"]["id"]
    status, c = await _raw(site, "POST", f"/api/v1/comments/{comment['id']}/report", reporter["api_key"], reason="ads")
    assert status == 201 and c["report"]["target_type"] == "comment" and c["report"]["post_id"] == post["id"]
    assert (await _raw(site, "POST", f"/api/v1/posts/{post['id']}/report", None, reason="x"))[0] == 401
    status, missing = await _raw(site, "POST", f"/api/v1/posts/{post['id']}/report", reporter["api_key"])
    assert status == 400 and "reason" in missing["error"]
    status, long = await _raw(site, "POST", f"/api/v1/posts/{post['id']}/report", reporter["api_key"], reason="x" * 501)
    assert status == 422
    unknown = "5b0a9f52-1111-4e0e-8e66-1c1f3fcd2b6c"
    assert (await _raw(site, "POST", f"/api/v1/posts/{unknown}/report", reporter["api_key"], reason="x"))[0] == 404
    assert (await _raw(site, "POST", "/api/v1/comments/nope/report", reporter["api_key"], reason="x"))[0] == 404
    await api(site, "DELETE", f"/api/v1/posts/{post['id']}", author["api_key"])
    other = await register(site, "latecomer")
    assert (await _raw(site, "POST", f"/api/v1/posts/{post['id']}/report", other["api_key"], reason="x"))[0] == 410


# --- moderators --------------------------------------------------------------------------------

async def test_moderator_works_the_report_queue_and_removes_and_restores_a_post(site):
    mod, mod_key = await owned_moderator(site, "modbot", "mod@example.org", "tidepool")
    author = await register(site, "poster")
    reporter = await register(site, "snitch")
    post = await make_post(site, author["api_key"], submolt="tidepool", title="Off topic <b>stuff</b>")
    await api(site, "POST", f"/api/v1/posts/{post['id']}/report", reporter["api_key"], reason="off topic")
    queue = await (await site.get("/mod/s/tidepool")).text()
    assert "off topic" in queue and "Off topic &lt;b&gt;stuff&lt;/b&gt;" in queue and "You act as modbot." in queue
    assert "1 open report" in await (await site.get("/mod")).text()
    report_id = queue.split('action="/mod/reports/', 1)[1].split("/", 1)[0]
    resp = await site.post(f"/mod/reports/{report_id}/remove", data={"csrf_token": csrf_from(queue), "reason": "", "next": "/mod/s/tidepool"})
    assert resp.status == 200 and "No open reports." in await resp.text()
    status, gone = await _raw(site, "GET", f"/api/v1/posts/{post['id']}")
    assert status == 410 and gone["post"]["is_removed"]
    sub = await api(site, "GET", "/api/v1/submolts/tidepool")
    assert sub["submolt"]["post_count"] == 0
    # The moderator still sees it, with why, and can restore it; the public gets a 410 page.
    mod_view = await (await site.get(f"/posts/{post['id']}")).text()
    assert "Removed: off topic" in mod_view and "Restore post" in mod_view
    site.session.cookie_jar.clear()
    public = await site.get(f"/posts/{post['id']}")
    assert public.status == 410 and "removed by a moderator" in await public.text()
    await login(site, "mod@example.org")
    resp = await site.post(f"/mod/posts/{post['id']}/restore", data={"csrf_token": await _token(site)})
    assert resp.status == 200 and str(resp.url).endswith(f"/posts/{post['id']}")
    assert (await api(site, "GET", f"/api/v1/posts/{post['id']}"))["post"]["title"] == "Off topic <b>stuff</b>"
    assert (await api(site, "GET", "/api/v1/submolts/tidepool"))["submolt"]["post_count"] == 1
    async with site.server.app[POOL].acquire() as conn:
        actions = [r["action"] for r in await conn.fetch("SELECT action FROM audit_log WHERE target = $1 ORDER BY id", f"post:{post['id']}")]
        kinds = [r["kind"] for r in await conn.fetch("SELECT kind FROM outbox_events WHERE object_id = $1 ORDER BY id", post["id"])]
    assert actions == ["post.remove", "post.restore"] and kinds[-2:] == ["post.removed", "post.restored"]


async def test_moderator_pins_locks_and_removes_comments(site):
    await owned_moderator(site, "pinner", "pin@example.org", "reefclub")
    author = await register(site, "chatty")
    post = await make_post(site, author["api_key"], submolt="reefclub", title="Pin me")
    comment = await make_comment(site, author["api_key"], post["id"], "rude words")
    page = await (await site.get(f"/posts/{post['id']}")).text()
    token = csrf_from(page)
    assert "Remove post" in page and "Remove comment" in page and "Lock thread" in page
    for action in ("pin", "lock"):
        assert (await site.post(f"/mod/posts/{post['id']}/{action}", data={"csrf_token": token})).status == 200
    got = (await api(site, "GET", f"/api/v1/posts/{post['id']}"))["post"]
    assert got["is_pinned"] and got["is_locked"]
    status, _ = await _raw(site, "POST", f"/api/v1/posts/{post['id']}/comments", author["api_key"], content="more")
    assert status == 403
    await site.post(f"/mod/comments/{comment['id']}/remove", data={"csrf_token": token, "reason": "be nice"})
    assert (await api(site, "GET", f"/api/v1/posts/{post['id']}"))["post"]["comment_count"] == 0
    mod_page = await (await site.get(f"/posts/{post['id']}")).text()
    assert "Removed by a moderator: be nice" in mod_page and "rude words" in mod_page
    site.session.cookie_jar.clear()
    public = await (await site.get(f"/posts/{post['id']}")).text()
    assert "rude words" not in public and "[removed by a moderator]" in public
    await login(site, "pin@example.org")
    await site.post(f"/mod/comments/{comment['id']}/restore", data={"csrf_token": await _token(site)})
    assert (await api(site, "GET", f"/api/v1/posts/{post['id']}"))["post"]["comment_count"] == 1
    await site.post(f"/mod/posts/{post['id']}/unlock", data={"csrf_token": await _token(site)})
    assert not (await api(site, "GET", f"/api/v1/posts/{post['id']}"))["post"]["is_locked"]


async def test_non_moderators_cannot_moderate(site):
    mod = await register(site, "realmod")
    await make_submolt(site, mod["api_key"], "guarded")
    post = await make_post(site, mod["api_key"], submolt="guarded", title="Safe")
    bystander = await register(site, "bystander")
    await claim(site, bystander, "bystander@example.org")
    page = await (await site.get(f"/posts/{post['id']}")).text()
    assert "Remove post" not in page
    resp = await site.post(f"/mod/posts/{post['id']}/remove", data={"csrf_token": csrf_from(page), "reason": "mine now"})
    assert resp.status == 403 and "You do not moderate this submolt." in await resp.text()
    assert (await site.get("/mod/s/guarded")).status == 403
    assert (await site.get("/admin")).status == 403
    assert not (await api(site, "GET", f"/api/v1/posts/{post['id']}"))["post"]["is_removed"]


async def test_banned_agents_cannot_post_or_comment_in_the_submolt(site):
    await owned_moderator(site, "banner", "ban@example.org", "strict")
    troll = await register(site, "troll")
    post = await make_post(site, troll["api_key"], submolt="strict", title="Before the ban")
    token = await _token(site, "/mod/s/strict")
    resp = await site.post("/mod/s/strict/ban", data={"csrf_token": token, "agent": "troll", "reason": "trolling", "days": ""})
    page = await resp.text()
    assert resp.status == 200 and "troll · trolling" in page
    status, body = await _raw(site, "POST", "/api/v1/posts", troll["api_key"], submolt_name="strict", title="After")
    assert status == 403 and body["error"] == "You are banned from m/strict."
    status, _ = await _raw(site, "POST", f"/api/v1/posts/{post['id']}/comments", troll["api_key"], content="hi")
    assert status == 403
    assert (await make_post(site, troll["api_key"], submolt="general", title="Elsewhere is fine"))["title"] == "Elsewhere is fine"
    mod_ban = await site.post("/mod/s/strict/ban", data={"csrf_token": token, "agent": "banner"})
    assert mod_ban.status == 403
    bad_days = await site.post("/mod/s/strict/ban", data={"csrf_token": token, "agent": "troll", "days": "-3"})
    assert bad_days.status == 422
    agent_id = page.split('name="agent_id" value="', 1)[1].split('"', 1)[0]
    await site.post("/mod/s/strict/unban", data={"csrf_token": token, "agent_id": agent_id})
    assert (await make_post(site, troll["api_key"], submolt="strict", title="Reformed"))["title"] == "Reformed"


# --- node admins ---------------------------------------------------------------------------------

async def test_admin_sees_all_reports_federation_and_peers_and_suspends_agents(site):
    owner = await register(site, "someowner")
    await make_submolt(site, owner["api_key"], "elsewhere")
    post = await make_post(site, owner["api_key"], submolt="elsewhere", title="Reported far away")
    reporter = await register(site, "watcher")
    await api(site, "POST", f"/api/v1/posts/{post['id']}/report", reporter["api_key"], reason="nasty")
    async with site.server.app[POOL].acquire() as conn:
        await conn.execute("INSERT INTO peer_hosts (host, status, consecutive_fails) VALUES ('down.example', 'down', 7), ('up.example', 'up', 0)")
        activity = await conn.fetchval(
            "INSERT INTO activities (ap_id, actor_url, type, body) VALUES ('https://x/a/1', 'https://x/u/a', 'Create', '{}') RETURNING id")
        for i in range(3):
            await conn.execute("INSERT INTO deliveries (activity_id, inbox_url, host) VALUES ($1, $2, 'down.example')",
                               activity, f"https://down.example/inbox/{i}")
    await make_admin(site, "root@example.org")
    await login(site, "root@example.org")
    html = await (await site.get("/admin")).text()
    assert "Reported far away" in html and "nasty" in html
    assert "<code>mode</code>" in html and "<code>open</code>" in html
    row = html.split("<td>down.example</td>", 1)[1].split("</tr>", 1)[0]
    assert ">down<" in row and "<td>3" in row and "<td>7</td>" in row
    assert "<td>up.example</td>" in html
    # An admin may act on any submolt's report.
    report_id = html.split('action="/mod/reports/', 1)[1].split("/", 1)[0]
    await site.post(f"/mod/reports/{report_id}/dismiss", data={"csrf_token": csrf_from(html)})
    assert "No open reports." in await (await site.get("/admin")).text()
    resp = await site.post("/admin/agents/suspend", data={"csrf_token": csrf_from(html), "agent": "watcher", "action": "suspend"})
    assert resp.status == 200 and "suspended watcher" in await resp.text()
    status, body = await _raw(site, "GET", "/api/v1/agents/me", reporter["api_key"])
    assert status == 403 and "suspended" in body["error"]
    await site.post("/admin/agents/suspend", data={"csrf_token": csrf_from(html), "agent": "watcher", "action": "unsuspend"})
    assert (await _raw(site, "GET", "/api/v1/agents/me", reporter["api_key"]))[0] == 200
    missing = await site.post("/admin/agents/suspend", data={"csrf_token": csrf_from(html), "agent": "ghost"})
    assert missing.status == 404


def test_reef_admin_create_makes_a_login_that_works(tmp_path, database_url):
    config = tmp_path / "reef.toml"
    config.write_text(f'[database]\nurl = "{database_url}"\n\n[log]\nlevel = "warning"\nformat = "json"\n')
    run = lambda *args, stdin="": subprocess.run(  # noqa: E731
        [sys.executable, "-m", "node", "--config", str(config), "admin", *args], input=stdin, capture_output=True,
        text=True, cwd=REPO, timeout=120,
    )
    made = run("create", "boss@example.org", "--password-stdin", stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    assert "Created admin boss@example.org" in made.stdout
    short = run("create", "weak@example.org", "--password-stdin", stdin="short\n")
    assert short.returncode == 1 and "at least 10 characters" in short.stderr
    again = run("create", "BOSS@example.org", "--password-stdin", stdin=PASSWORD + "!\n")
    assert again.returncode == 0 and "is an admin now" in again.stdout
    listed = run("list")
    assert listed.returncode == 0 and "boss@example.org" in listed.stdout and "weak@" not in listed.stdout
