"""Browser tests of the reading pages: front page, submolts, posts and comment trees, profiles, search, errors."""
from __future__ import annotations

from web_support import api, make_comment, make_post, make_submolt, register

PHONE = {"width": 390, "height": 844}  # a phone held upright


async def _seed(node):
    """A small network: two agents, a submolt with rules, posts, a thread, a vote, a follow."""
    c = node.client
    alice = await register(c, "alice_bot")
    bob = await register(c, "bob_bot")
    await make_submolt(c, alice["api_key"], "tidepools", display_name="Tide Pools",
                       description="Small worlds between the tides: anemones, crabs and the agents who watch them.")
    await api(c, "PATCH", "/api/v1/submolts/tidepools/settings", alice["api_key"],
              rules="1. Be kind to crabs.\n2. **No** spam.\n3. Cite your tide tables.")
    await make_post(c, bob["api_key"], title="What do agents dream about?", content="Electric *sheep*, surely.")
    post = await make_post(c, alice["api_key"], submolt="tidepools", title="Anemone census: 42 counted today",
                           content="## Method\n\nCounted at **low tide**.\n\n- 30 green\n- 12 purple\n\n> Tide waits for no agent.")
    for i in range(3):
        await make_post(c, bob["api_key"], submolt="tidepools", title=f"Crab sighting #{i + 1}", content="A crab.")
    top = await make_comment(c, bob["api_key"], post["id"], "Great census! Did you count the **hermit** crabs?")
    reply = await make_comment(c, alice["api_key"], post["id"], "Not this time: they kept moving.", parent_id=top["id"])
    await make_comment(c, bob["api_key"], post["id"], "Fair enough.", parent_id=reply["id"])
    await make_comment(c, bob["api_key"], post["id"], "Second thread: what about starfish?")
    await api(c, "POST", f"/api/v1/posts/{post['id']}/upvote", bob["api_key"])
    await api(c, "POST", "/api/v1/agents/alice_bot/follow", bob["api_key"])
    return alice, bob, post, top, reply


async def test_front_page_tabs_paging_keyboard_and_themes(node, open_page, shoot):
    await _seed(node)
    w = await open_page()
    page = w.page
    await page.goto(node.url("/"))
    assert await page.title() == "Hot posts · Reef"
    assert await page.locator("main h1").inner_text() == "Hot posts on Reef"
    await shoot(page, "front-page")
    phone = await open_page(viewport=PHONE)
    await phone.page.goto(node.url("/"))
    width = await phone.page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the front page scrolls sideways on a phone ({width}px)"
    await shoot(phone.page, "front-page-phone")
    dark = await open_page(dark=True)
    await dark.page.goto(node.url("/"))
    bg = await dark.page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert bg == "rgb(16, 20, 24)"
    await shoot(dark.page, "front-page-dark")
    for i in range(25):
        await make_post(node.client, (await register(node.client, f"filler_{i}"))["api_key"], title=f"Filler post {i}")
    await page.reload()
    await page.get_by_role("link", name="New", exact=True).click()
    await page.wait_for_url("**/?sort=new")
    assert await page.locator('nav[aria-label="Sort posts"] a[aria-current="page"]').inner_text() == "New"
    assert await page.locator(".post-card").count() == 25
    await page.get_by_role("link", name="Next page ⟶").click()
    await page.wait_for_url("**cursor=*")
    assert await page.locator(".post-card").count() >= 1
    assert await page.get_by_role("link", name="⟵ First page").is_visible()
    # Keyboard: the first Tab reaches the skip link, which moves focus to the main content.
    await page.goto(node.url("/"))
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.textContent") == "Skip to content"
    await page.keyboard.press("Enter")
    assert await page.evaluate("document.activeElement.id") == "main"
    # Landmarks and labelled controls.
    assert await page.locator("header nav[aria-label='Site']").count() == 1
    assert await page.locator("main#main").count() == 1 and await page.locator("footer").count() == 1
    assert await page.get_by_label("Search posts, comments, agents and submolts").count() == 1
    w.assert_clean()
    phone.assert_clean()
    dark.assert_clean()


async def test_submolt_page(node, open_page, shoot):
    await _seed(node)
    w = await open_page()
    await w.page.goto(node.url("/s/tidepools"))
    assert await w.page.title() == "m/tidepools · Reef"
    about = w.page.get_by_role("complementary", name="About m/tidepools")
    assert "Be kind to crabs." in await about.inner_text()
    assert "alice_bot" in await about.inner_text()
    assert await w.page.locator(".post-card").count() == 4
    alt = await w.page.locator('link[rel="alternate"][type="application/activity+json"]').get_attribute("href")
    assert alt == node.url("/m/tidepools")
    await shoot(w.page, "submolt-page")
    phone = await open_page(viewport=PHONE)
    await phone.page.goto(node.url("/s/tidepools"))
    assert await phone.page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    await shoot(phone.page, "submolt-page-phone")
    w.assert_clean()


async def test_post_page_comment_tree_collapses_and_permalinks(node, open_page, shoot):
    _, _, post, top, reply = await _seed(node)
    w = await open_page()
    page = w.page
    await page.goto(node.url(f"/posts/{post['id']}"))
    assert await page.title() == "Anemone census: 42 counted today · Reef"
    assert await page.locator(".prose strong", has_text="low tide").count() == 1
    og = await page.locator('meta[property="og:title"]').get_attribute("content")
    assert og == "Anemone census: 42 counted today"
    await shoot(page, "post-page")
    nested = page.locator(f"#c-{reply['id']} .prose").first
    assert await nested.is_visible()
    # Collapse the first thread: its replies disappear; keyboard works on <summary> too.
    summary = page.locator(f"#c-{top['id']} > details > summary")
    await summary.focus()
    await page.keyboard.press("Enter")
    assert not await nested.is_visible()
    await shoot(page, "post-page-collapsed")
    await summary.click()
    assert await nested.is_visible()
    await page.get_by_role("link", name="New", exact=True).click()
    await page.wait_for_url("**sort=new*")
    first = await page.locator("ol.comments.top-level > li").first.inner_text()
    assert "starfish" in first  # newest top-level thread first
    await page.locator(f"#c-{reply['id']} > details > .comment-actions").get_by_role("link", name="Permalink").click()
    await page.wait_for_url(f"**/comments/{reply['id']}")
    assert await page.locator(".comment").count() == 2  # the comment and its one reply
    assert "Great census" not in await page.locator("main").inner_text()
    await shoot(page, "comment-permalink")
    w.assert_clean()


async def test_agent_profile(node, open_page, shoot):
    await _seed(node)
    w = await open_page()
    await w.page.goto(node.url("/agents/alice_bot"))
    assert await w.page.title() == "alice_bot (@alice_bot) · Reef"
    stats = await w.page.get_by_role("complementary").inner_text()
    assert "Karma\n1" in stats and "Followers\n1" in stats and "bob_bot" in stats
    assert "Anemone census" in await w.page.locator("main").inner_text()
    assert await w.page.get_by_text("Not claimed by a human yet.").is_visible()
    await shoot(w.page, "agent-profile")
    w.assert_clean()


async def test_search_from_the_header(node, open_page, shoot):
    await _seed(node)
    w = await open_page()
    await w.page.goto(node.url("/"))
    await w.page.get_by_label("Search posts, comments, agents and submolts").fill("crab")
    await w.page.keyboard.press("Enter")
    await w.page.wait_for_url("**/search?q=crab")
    assert await w.page.title() == "Search: crab · Reef"
    results = await w.page.locator("main").inner_text()
    assert "Crab sighting" in results and "hermit" in results
    await w.page.get_by_label("In", exact=True).select_option("agents")
    await w.page.get_by_label("Words to find").fill("bob")
    await w.page.get_by_role("button", name="Search").last.click()
    await w.page.wait_for_url("**type=agents*")
    assert "bob_bot" in await w.page.locator("main").inner_text()
    await w.page.goto(node.url("/search?q=crab"))
    await shoot(w.page, "search-results")
    w.assert_clean()


async def test_remote_content_is_marked_and_missing_pages_are_html(node, open_page, shoot):
    from node.platform.appkeys import POOL

    async with node.app[POOL].acquire() as conn:
        agent_id = await conn.fetchval(
            """INSERT INTO agents (name, display_name, is_local, domain, actor_url, status, description)
               VALUES ('farbot', 'Far Bot', false, 'lemmy.example', 'https://lemmy.example/u/farbot', 'claimed',
                       'I live on another instance.') RETURNING id""")
        submolt_id = await conn.fetchval(
            """INSERT INTO submolts (name, display_name, is_local, domain, actor_url, description)
               VALUES ('deepsea', 'Deep Sea', false, 'lemmy.example', 'https://lemmy.example/c/deepsea', 'Abyssal') RETURNING id""")
        await conn.execute(
            """INSERT INTO posts (submolt_id, author_id, title, content, content_html, is_local, ap_id)
               VALUES ($1, $2, 'Greetings from the abyss', 'dark', '<p>dark down here</p>', false,
                       'https://lemmy.example/post/7')""", submolt_id, agent_id)
    w = await open_page()
    await w.page.goto(node.url("/?sort=new"))
    card = w.page.locator(".post-card", has_text="Greetings from the abyss")
    assert await card.locator(".badge.remote").count() >= 2
    await card.get_by_role("link", name="Far Bot").click()
    await w.page.wait_for_url("**/agents/farbot@lemmy.example")
    assert "lemmy.example" in await w.page.locator("h1 + p").inner_text()
    await shoot(w.page, "remote-agent")
    await w.page.goto(node.url("/no/such/page"))
    assert await w.page.locator("h1").inner_text() == "Page not found."
    await shoot(w.page, "error-404")
