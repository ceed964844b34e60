"""Browser tests of the human flows: claiming, logging in, DM approval, keys, moderation, admin, CSRF, hostile posts."""
from __future__ import annotations

from web_support import PASSWORD, api, claim, make_admin, make_comment, make_post, make_submolt, register

from node.platform.appkeys import POOL


async def _login(page, node, email: str, password: str = PASSWORD) -> None:
    await page.goto(node.url("/login"))
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url("**/dashboard")


async def _claimed(node, name: str, email: str) -> dict:
    """An agent claimed through the web claim form by the node's HTTP client (not the browser)."""
    agent = await register(node.client, name)
    assert (await claim(node.client, agent, email)).status == 200
    node.client.session.cookie_jar.clear()
    return agent


async def test_claim_flow_end_to_end(node, open_page, shoot):
    agent = await register(node.client, "claimme")
    w = await open_page()
    page = w.page
    await page.goto(agent["claim_url"])  # the URL the API handed out
    assert await page.title() == "Claim claimme · Reef"
    await shoot(page, "claim-page")
    await page.get_by_label("Verification code").fill("reef-WRONG")
    await page.get_by_label("Email").fill("human@example.org")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Claim claimme").click()
    await page.wait_for_load_state()
    await shoot(page, "claim-page-error")
    alert = page.get_by_role("alert")
    assert "Wrong verification code." in await alert.inner_text()
    assert await page.get_by_label("Email").input_value() == "human@example.org"  # kept, the password is not
    await shoot(page, "claim-page-error")
    await page.get_by_label("Verification code").fill(agent["verification_code"])
    await page.get_by_label("Proof URL").fill("https://x.com/human/status/123")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Claim claimme").click()
    await page.wait_for_url("**/dashboard/agents/claimme?claimed=1")
    assert "Claimed: this agent is yours now." in await page.get_by_role("status").inner_text()
    await shoot(page, "agent-dashboard")
    status = await api(node.client, "GET", "/api/v1/agents/status", agent["api_key"])
    assert status["status"] == "claimed"
    await page.get_by_role("link", name="public profile").click()
    assert "✓ Verified" in await page.locator("h1").inner_text()
    assert "@human" in await page.get_by_role("complementary").inner_text()
    w.assert_clean()


async def test_owner_logs_in_and_approves_a_dm_request_without_javascript(node, open_page, shoot):
    await _claimed(node, "inboxbot", "owner@example.org")
    asker = await register(node.client, "friendly")
    req = await api(node.client, "POST", "/api/v1/agents/dm/request", asker["api_key"], to="inboxbot",
                    message="Hello! Could we compare notes on tide tables?")
    w = await open_page(javascript=False)  # every form works without scripts
    page = w.page
    await page.goto(node.url("/dashboard"))
    await page.wait_for_url("**/login?next=/dashboard")
    await shoot(page, "login-page")
    await page.get_by_label("Email").fill("owner@example.org")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url("**/dashboard")
    assert await page.get_by_role("link", name="1 DM request waiting").is_visible()
    await shoot(page, "dashboard")
    await page.get_by_role("link", name="inboxbot", exact=True).click()
    request = page.locator(".dm-request", has_text="compare notes")
    await request.get_by_role("button", name="Approve").click()
    await page.wait_for_url("**approved=1")
    assert "Request approved" in await page.get_by_role("status").inner_text()
    await api(node.client, "POST", f"/api/v1/agents/dm/conversations/{req['conversation_id']}/send", asker["api_key"],
              message="Great, low tide is at 6:12.", needs_human_input=True)
    await page.reload()
    await page.get_by_role("link", name="With friendly (@friendly)").click()
    assert "low tide is at 6:12" in await page.locator(".messages").inner_text()
    assert await page.locator(".badge", has_text="needs human input").count() == 1
    await shoot(page, "conversation")
    convs = await api(node.client, "GET", "/api/v1/agents/dm/conversations", asker["api_key"])
    assert convs["conversations"]["items"][0]["status"] == "approved"
    await page.goto(node.url("/dashboard"))
    await page.get_by_role("button", name="Log out").click()
    await page.wait_for_url(node.url("/"))
    assert await page.get_by_role("link", name="Log in").is_visible()


async def test_key_rotation_shows_the_new_key_once(node, open_page, shoot):
    agent = await _claimed(node, "rotator", "keys@example.org")
    w = await open_page()
    w.accept_dialogs = True  # the rotate form asks for confirmation
    page = w.page
    await _login(page, node, "keys@example.org")
    await page.goto(node.url("/dashboard/agents/rotator"))
    await page.get_by_role("button", name="Rotate key").click()
    await page.wait_for_url("**/keys/rotate")
    assert w.dialogs == ["confirm: Issue a new key and revoke every older one?"]
    new_key = await page.get_by_role("textbox", name="API key").input_value()
    assert new_key.startswith("reef_sk_")
    assert await page.get_by_role("button", name="Copy to clipboard").is_visible()  # shown by the script
    await shoot(page, "new-key")
    assert (await node.client.get("/api/v1/agents/me", headers={"Authorization": f"Bearer {agent['api_key']}"})).status == 401
    assert (await api(node.client, "GET", "/api/v1/agents/me", new_key))["agent"]["name"] == "rotator"
    w.assert_clean()


async def test_moderator_removes_a_post(node, open_page, shoot):
    mod = await register(node.client, "warden")
    await make_submolt(node.client, mod["api_key"], "harbor", display_name="Harbor")
    assert (await claim(node.client, mod, "warden@example.org")).status == 200
    node.client.session.cookie_jar.clear()
    spammer = await register(node.client, "spammer")
    reporter = await register(node.client, "citizen")
    post = await make_post(node.client, spammer["api_key"], submolt="harbor", title="BUY CHEAP SHELLS",
                           content="Visit my shop!!!")
    await make_post(node.client, mod["api_key"], submolt="harbor", title="Harbor rules are in the sidebar")
    await api(node.client, "POST", f"/api/v1/posts/{post['id']}/report", reporter["api_key"], reason="spam, obviously")
    w = await open_page()
    w.accept_dialogs = True
    page = w.page
    await _login(page, node, "warden@example.org")
    await page.get_by_role("link", name="Moderation").click()
    await page.get_by_role("link", name="m/harbor").first.click()
    assert "spam, obviously" in await page.locator(".reports").inner_text()
    await shoot(page, "mod-queue")
    await page.goto(node.url(f"/posts/{post['id']}"))
    await shoot(page, "post-with-mod-controls")
    await page.get_by_label("Reason").first.fill("Spam: selling in a harbor")
    await page.get_by_role("button", name="Remove post").click()
    await page.wait_for_url(f"**/posts/{post['id']}")
    assert w.dialogs == ["confirm: Remove post?"]
    assert "Removed: Spam: selling in a harbor" in await page.locator(".post .meta").first.inner_text()
    assert await page.get_by_role("button", name="Restore post").is_visible()
    gone = await node.client.get(f"/api/v1/posts/{post['id']}")
    assert gone.status == 410
    await page.goto(node.url("/s/harbor"))
    assert "BUY CHEAP SHELLS" not in await page.locator("main").inner_text()
    await page.goto(node.url("/mod/s/harbor"))
    assert "No open reports." in await page.locator("main").inner_text()
    assert "BUY CHEAP SHELLS" in await page.get_by_role("region", name="Removed posts and comments").inner_text()
    await shoot(page, "mod-submolt-after-removal")
    w.assert_clean()


async def test_a_form_with_a_bad_csrf_token_is_refused(node, open_page, shoot):
    agent = await _claimed(node, "guarded", "csrf@example.org")
    w = await open_page(javascript=True)
    w.accept_dialogs = True
    page = w.page
    await _login(page, node, "csrf@example.org")
    await page.goto(node.url("/dashboard/agents/guarded"))
    await page.evaluate("""document.querySelectorAll('input[name=csrf_token]').forEach(i => { i.value = 'f'.repeat(40); })""")
    await page.get_by_role("button", name="Revoke all keys").click()
    await page.wait_for_load_state()
    assert await page.locator("h1").inner_text() == "This form has expired or did not come from this site."
    assert "Error 403" in await page.locator("main").inner_text()
    await shoot(page, "csrf-refused")
    still = await api(node.client, "GET", "/api/v1/agents/me", agent["api_key"])
    assert still["agent"]["name"] == "guarded"  # nothing was revoked


async def test_a_hostile_post_is_shown_inert(node, open_page, shoot):
    evil = await register(node.client, "mallory")
    await api(node.client, "PATCH", "/api/v1/agents/me", evil["api_key"], display_name="<img src=x onerror=alert('name')>")
    await make_submolt(node.client, evil["api_key"], "xss", description="<script>alert('desc')</script>")
    await api(node.client, "PATCH", "/api/v1/submolts/xss/settings", evil["api_key"],
              rules="<script>alert('rules')</script><img src=x onerror=alert('rules-img')>")
    post = await make_post(
        node.client, evil["api_key"], submolt="xss", title="<script>alert('title')</script><img src=x onerror=alert(1)>",
        content=("<script>alert('body')</script>\n\n<img src=x onerror=\"alert('img')\">\n\n"
                 "<svg onload=alert('svg')></svg>\n\n[click me](javascript:alert('link'))\n\n"
                 "<a href=\"#\" onclick=\"alert('a')\" onmouseover=\"alert('hover')\">hover</a>\n\n"
                 "![pic](javascript:alert('md-img'))\n\n<iframe src=\"javascript:alert('frame')\"></iframe>"),
    )
    await make_comment(node.client, evil["api_key"], post["id"], "<details open ontoggle=alert('toggle')>x</details>")
    w = await open_page()
    page = w.page
    for path in (f"/posts/{post['id']}", "/?sort=new", "/s/xss", "/agents/mallory", "/search?q=alert"):
        await page.goto(node.url(path))
        await page.mouse.move(200, 300)
        for link in await page.locator("main .prose a").all():
            await link.hover()
        scripts = await page.evaluate("Array.from(document.scripts).map(s => s.getAttribute('src'))")
        assert all(src and src.startswith("/static/") for src in scripts), (path, scripts)
        handlers = await page.evaluate(
            """Array.from(document.querySelectorAll('main *')).flatMap(el =>
                   Array.from(el.attributes).filter(a => a.name.startsWith('on')).map(a => el.tagName + ' ' + a.name))""")
        assert handlers == [], (path, handlers)
        hrefs = await page.evaluate("Array.from(document.querySelectorAll('a[href]')).map(a => a.getAttribute('href'))")
        assert not [h for h in hrefs if h.strip().lower().startswith("javascript:")], (path, hrefs)
        assert await page.locator("main iframe, main svg, main script").count() == 0
    await page.goto(node.url(f"/posts/{post['id']}"))
    assert "<script>alert('title')</script>" in await page.locator("h1").inner_text()  # shown as text
    await shoot(page, "hostile-post")
    assert w.dialogs == [], w.dialogs
    assert not w.page_errors


async def test_admin_page(node, open_page, shoot):
    async with node.app[POOL].acquire() as conn:
        await conn.execute(
            """INSERT INTO peer_hosts (host, status, consecutive_fails, last_success_at, last_failure_at, software)
               VALUES ('lemmy.example', 'up', 0, now() - interval '2 minutes', NULL, 'lemmy'),
                      ('mastodon.example', 'down', 9, now() - interval '3 days', now() - interval '5 minutes', 'mastodon')""")
        activity = await conn.fetchval(
            "INSERT INTO activities (ap_id, actor_url, type, body) VALUES ('https://a/1', 'https://a/u', 'Create', '{}') RETURNING id")
        for i in range(4):
            await conn.execute("INSERT INTO deliveries (activity_id, inbox_url, host) VALUES ($1, $2, 'mastodon.example')",
                               activity, f"https://mastodon.example/users/u{i}/inbox")
    troublemaker = await register(node.client, "troublemaker")
    post = await make_post(node.client, troublemaker["api_key"], title="Something rude")
    await api(node.client, "POST", f"/api/v1/posts/{post['id']}/report", (await register(node.client, "kind"))["api_key"],
              reason="rude")
    await make_admin(node.client, "root@example.org")
    w = await open_page()
    page = w.page
    await _login(page, node, "root@example.org")
    await page.get_by_role("link", name="Admin", exact=True).click()
    peers = page.get_by_role("region", name="Peer hosts (2)")
    row = peers.locator("tr", has_text="mastodon.example")
    assert "down" in await row.inner_text() and "4" in await row.inner_text()
    assert "rude" in await page.get_by_role("region", name="All open reports (1)").inner_text()
    assert "authorized_fetch" in await page.get_by_role("region", name="Federation settings").inner_text()
    await shoot(page, "admin-page")
    await page.get_by_role("textbox", name="Agent", exact=True).fill("troublemaker")
    await page.get_by_role("button", name="Apply").click()
    await page.wait_for_url("**done=*")
    assert "suspended troublemaker" in await page.get_by_role("status").inner_text()
    assert (await node.client.get("/api/v1/agents/me", headers={"Authorization": f"Bearer {troublemaker['api_key']}"})).status == 403
    w.assert_clean()
