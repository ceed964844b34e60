"""The reading pages over HTTP: content, escaping, titles and Open Graph, ActivityPub links, headers, errors."""
from __future__ import annotations

import re

import pytest
from web_support import NO_WAIT_LIMITS, api, make_comment, make_post, make_submolt, register

from node.app import create_app
from node.platform.appkeys import POOL


@pytest.fixture
async def site(aiohttp_client, make_config):
    return await aiohttp_client(create_app(make_config(limits=NO_WAIT_LIMITS)))


async def _page(client, path: str, status: int = 200) -> str:
    resp = await client.get(path, headers={"Accept": "text/html"})
    text = await resp.text()
    assert resp.status == status, (path, resp.status, text[:500])
    assert resp.content_type == "text/html"
    return text


async def test_front_page_lists_posts_in_each_sort_with_titles_and_paging(site):
    author = await register(site, "writer")
    titles = [f"Post number {i}" for i in range(27)]
    for title in titles:
        await make_post(site, author["api_key"], title=title)
    html = await _page(site, "/?sort=new")
    assert "<title>New posts · Reef</title>" in html
    assert 'aria-current="page">New</a>' in html
    assert "Post number 26" in html and "Post number 1<" not in html  # 25 per page, newest first
    next_link = re.search(r'rel="next" href="([^"]+)"', html)
    assert next_link, "a full page links to the next one"
    second = await _page(site, next_link.group(1).replace("&amp;", "&"))
    assert "Post number 1<" in second and "Post number 0<" in second and "Post number 26" not in second
    for sort in ("hot", "rising"):  # no votes: both fall back to newest first
        assert "Post number 26" in await _page(site, f"/?sort={sort}")
    # top: all 27 have score 0, so which 25 come first is the id tie-break's choice; a full page of them.
    assert len(set(re.findall(r"Post number (\d+)<", await _page(site, "/?sort=top")))) == 25


async def test_a_bad_cursor_is_an_html_400_not_json(site):
    html = await _page(site, "/?sort=new&cursor=garbage", status=400)
    assert "Malformed cursor" in html and "<html" in html


async def test_submolt_page_shows_about_rules_moderators_and_its_feed(site):
    owner = await register(site, "founder")
    await make_submolt(site, owner["api_key"], "lobsters", display_name="Lobster Lovers", description="Claws and all")
    await api(site, "PATCH", "/api/v1/submolts/lobsters/settings", owner["api_key"], rules="1. **Be kind**")
    await make_post(site, owner["api_key"], submolt="lobsters", title="Molting season")
    html = await _page(site, "/s/lobsters")
    assert "<title>m/lobsters · Reef</title>" in html
    assert "Lobster Lovers" in html and "Claws and all" in html
    assert "<strong>Be kind</strong>" in html  # rules: the sanitised HTML stored at write time
    assert 'href="/agents/founder"' in html and ">owner<" in html
    assert "Molting season" in html
    assert '<dt>Subscribers</dt><dd>1</dd>' in html
    assert '<link rel="alternate" type="application/activity+json" href="http://127.0.0.1:8080/m/lobsters">' in html
    assert '<meta property="og:title" content="m/lobsters: Lobster Lovers">' in html
    assert "Lobster Lovers" in await _page(site, "/submolts")


async def test_post_page_has_comment_tree_sorts_permalinks_and_ap_link(site):
    a = await register(site, "alpha")
    b = await register(site, "beta")
    post = await make_post(site, a["api_key"], title="Tides", content="Water *moves*.")
    top = await make_comment(site, b["api_key"], post["id"], "First!")
    reply = await make_comment(site, a["api_key"], post["id"], "A reply", parent_id=top["id"])
    html = await _page(site, f"/posts/{post['id']}?sort=new")
    assert "<title>Tides · Reef</title>" in html
    assert "<em>moves</em>" in html
    assert f'<link rel="alternate" type="application/activity+json" href="http://127.0.0.1:8080/post/{post["id"]}">' in html
    assert '<meta property="og:type" content="article">' in html
    assert html.count("<details open>") == 2  # each comment collapses with its replies
    assert html.index(f'id="c-{top["id"]}"') < html.index(f'id="c-{reply["id"]}"')
    assert f'href="/comments/{reply["id"]}"' in html
    assert 'aria-current="page">New</a>' in html
    permalink = await _page(site, f"/comments/{reply['id']}")
    assert "A reply" in permalink and "First!" not in permalink
    assert f'href="http://127.0.0.1:8080/comment/{reply["id"]}"' in permalink
    assert f'href="/comments/{top["id"]}">Parent comment' in permalink


async def test_agent_profile_shows_karma_activity_followers_and_owner(site):
    a = await register(site, "profiled")
    fan = await register(site, "fan")
    post = await make_post(site, a["api_key"], title="My first post")
    await make_comment(site, a["api_key"], post["id"], "Talking to myself")
    await api(site, "POST", "/api/v1/agents/profiled/follow", fan["api_key"])
    await api(site, "POST", f"/api/v1/posts/{post['id']}/upvote", fan["api_key"])
    html = await _page(site, "/agents/profiled")
    assert "<title>profiled (@profiled) · Reef</title>" in html
    assert "<dt>Karma</dt><dd>1</dd>" in html and "<dt>Followers</dt><dd>1</dd>" in html
    assert "My first post" in html and "Talking to myself" in html
    assert 'href="/agents/fan"' in html
    assert "Not claimed by a human yet." in html and "Verified" not in html
    assert 'href="http://127.0.0.1:8080/u/profiled"' in html
    assert '<meta property="og:type" content="profile">' in html


async def test_remote_agents_submolts_and_posts_are_marked_with_their_host(site):
    pool = site.server.app[POOL]
    async with pool.acquire() as conn:
        agent_id = await conn.fetchval(
            """INSERT INTO agents (name, display_name, is_local, domain, actor_url, status)
               VALUES ('farbot', 'Far Bot', false, 'far.example', 'https://far.example/u/farbot', 'claimed') RETURNING id""")
        submolt_id = await conn.fetchval(
            """INSERT INTO submolts (name, display_name, is_local, domain, actor_url)
               VALUES ('deepsea', 'Deep Sea', false, 'far.example', 'https://far.example/m/deepsea') RETURNING id""")
        post_id = await conn.fetchval(
            """INSERT INTO posts (submolt_id, author_id, title, content_html, is_local, ap_id)
               VALUES ($1, $2, 'From afar', '<p>hello</p>', false, 'https://far.example/post/1') RETURNING id""",
            submolt_id, agent_id)
    front = await _page(site, "/?sort=new")
    assert "From afar" in front
    assert 'href="/agents/farbot@far.example"' in front and 'href="/s/deepsea@far.example"' in front
    assert front.count('title="From another instance">far.example</span>') >= 2
    profile = await _page(site, "/agents/farbot@far.example")
    assert '<link rel="alternate" type="application/activity+json" href="https://far.example/u/farbot">' in profile
    assert "Ownership is kept by far.example" in profile
    submolt = await _page(site, "/s/deepsea@far.example")
    assert 'href="https://far.example/m/deepsea"' in submolt and "From afar" in submolt
    async with pool.acquire() as conn:
        await conn.execute(
            """INSERT INTO comments (post_id, author_id, content, content_html, is_local, ap_id)
               VALUES ($1, $2, 'me again', '<p>me again</p>', false, 'https://far.example/comment/9')""",
            post_id, agent_id)
    post = await _page(site, f"/posts/{post_id}")
    assert 'href="https://far.example/post/1"' in post
    assert post.count('href="/agents/farbot@far.example"') == 2 and "@far.example@" not in post  # post and comment
    await _page(site, "/agents/farbot", status=404)  # a remote agent is only found with its host


async def test_search_page_finds_posts_agents_and_submolts(site):
    a = await register(site, "seeker")
    await make_submolt(site, a["api_key"], "kelpforest", description="Kelp forests")
    await make_post(site, a["api_key"], submolt="kelpforest", title="Kelp grows fast", content="Kelp kelp kelp")
    html = await _page(site, "/search?q=kelp")
    assert "<title>Search: kelp · Reef</title>" in html
    assert "Kelp grows fast" in html and 'href="/s/kelpforest"' in html
    only_agents = await _page(site, "/search?q=seeker&type=agents")
    assert 'href="/agents/seeker"' in only_agents and "Kelp grows fast" not in only_agents
    assert 'id="search-q"' in await _page(site, "/search")
    assert "too long" in await _page(site, "/search?q=" + "x" * 300, status=400)


async def test_hostile_content_is_escaped_everywhere(site):
    evil = await register(site, "evil")
    await api(site, "PATCH", "/api/v1/agents/me", evil["api_key"], display_name='<img src=x onerror=alert(1)>',
              description='"><script>alert(2)</script>')
    post = await make_post(site, evil["api_key"], title='<script>alert("t")</script>',
                           content='<script>alert(3)</script><b onmouseover="alert(4)">x</b> [a](javascript:alert(5))')
    await make_comment(site, evil["api_key"], post["id"], '<svg onload="alert(6)"></svg><iframe src="x"></iframe>')
    for path in ("/?sort=new", f"/posts/{post['id']}", "/agents/evil", "/search?q=alert"):
        html = await _page(site, path)
        body = html.split("<body>", 1)[1]
        assert "<script>alert" not in body and "<script" not in body.replace('<script src="/static/', "")
        assert "onerror=" not in body.replace("onerror=alert(1)&gt;", "")  # only as escaped text
        assert "<svg" not in body and "<iframe" not in body and "<b onmouseover" not in body
        assert 'href="javascript:' not in body
    assert "&lt;script&gt;alert(&#34;t&#34;)&lt;/script&gt;" in await _page(site, f"/posts/{post['id']}")


async def test_security_headers_on_pages_and_errors_but_api_keeps_json(site):
    for path, status in (("/", 200), ("/no/such/page", 404)):
        resp = await site.get(path, headers={"Accept": "text/html"})
        assert resp.status == status
        csp = resp.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Referrer-Policy"] == "same-origin"
        assert resp.headers["X-Frame-Options"] == "DENY"
    page = await site.get("/no/such/page", headers={"Accept": "text/html"})
    assert "Page not found." in await page.text()
    api_404 = await site.get("/api/v1/no-such-thing")
    assert api_404.status == 404 and api_404.content_type == "application/json"
    assert (await api_404.json())["success"] is False
    gone = await site.get("/posts/5b0a9f52-1111-4e0e-8e66-1c1f3fcd2b6c")
    assert gone.status == 404 and "<html" in await gone.text()


async def test_static_files_are_versioned_and_cached_for_a_year(site):
    html = await _page(site, "/")
    css = re.search(r'href="(/static/[0-9a-f]{12}/reef\.css)"', html).group(1)
    js = re.search(r'src="(/static/[0-9a-f]{12}/reef\.js)"', html).group(1)
    for url, ctype in ((css, "text/css"), (js, "text/javascript")):
        resp = await site.get(url)
        assert resp.status == 200 and resp.content_type in (ctype, "application/javascript")
        assert resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    stale = await site.get("/static/000000000000/reef.css")
    assert stale.status == 200 and "immutable" not in stale.headers["Cache-Control"]
    assert (await site.get("/static/x/nope.css")).status == 404


async def test_browsers_opening_activitypub_ids_land_on_the_pages(site):
    a = await register(site, "redirected")
    post = await make_post(site, a["api_key"], title="Redirect me")
    for ap_path, page in (("/u/redirected", "/agents/redirected"), ("/m/general", "/s/general"),
                          (f"/post/{post['id']}", f"/posts/{post['id']}")):
        resp = await site.get(ap_path, headers={"Accept": "text/html"}, allow_redirects=False)
        assert resp.status == 302 and resp.headers["Location"] == page


async def test_pages_use_few_queries(aiohttp_client, make_config, monkeypatch):
    """Each reading page costs a handful of queries, whatever the amount of content on it."""
    import contextvars

    import asyncpg
    from aiohttp import web

    counting: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("counting", default=None)
    QUERIES = web.AppKey("test_queries", list)

    @web.middleware
    async def count_queries(request, handler):
        counting.set(request.app[QUERIES])
        return await handler(request)

    app = create_app(make_config(limits=NO_WAIT_LIMITS))
    app[QUERIES] = queries = []
    app.middlewares.insert(0, count_queries)  # outermost: the session lookup counts too
    site = await aiohttp_client(app)
    a = await register(site, "counted")
    post = await make_post(site, a["api_key"], title="Counted")
    for i in range(5):
        c = await make_comment(site, a["api_key"], post["id"], f"c{i}")
        await make_comment(site, a["api_key"], post["id"], f"r{i}", parent_id=c["id"])
    for method in ("fetch", "fetchrow", "fetchval", "execute"):
        def wrap(orig):
            async def spy(self, query, *args, **kwargs):
                seen = counting.get()
                if seen is not None and not query.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK", "SET", "RESET")):
                    seen.append(query)
                return await orig(self, query, *args, **kwargs)
            return spy

        monkeypatch.setattr(asyncpg.connection.Connection, method, wrap(getattr(asyncpg.connection.Connection, method)))
    # The profile: 6, and the reputation card's 4 (reputation, attestations, contributions, the chart's days).
    for path, most in (("/", 6), (f"/posts/{post['id']}", 8), ("/agents/counted", 10), ("/s/general", 8),
                       ("/search?q=counted", 10)):  # 4 kinds: a ranked query and a render each
        queries.clear()
        await _page(site, path)
        assert 0 < len(queries) <= most, (path, len(queries), queries)


async def test_a_failing_page_is_an_html_500_with_the_request_id(site, monkeypatch):
    from web import pages

    async def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(pages, "front_page", broken)
    resp = await site.get("/", headers={"X-Request-Id": "trace-me-12345"})
    html = await resp.text()
    assert resp.status == 500 and resp.content_type == "text/html"
    assert "Something went wrong on this node." in html and "trace-me-12345" in html and "boom" not in html
    assert resp.headers["Content-Security-Policy"].startswith("default-src 'none'")


async def test_table_alignment_survives_the_csp_as_classes(site):
    author = await register(site, "tabler")
    post = await make_post(site, author["api_key"], title="A table", content="| a | b |\n|:--|--:|\n| 1 | 2 |\n")
    assert 'style="text-align:right"' in post["content_html"]  # what the API and peers get
    html = await _page(site, f"/posts/{post['id']}")
    assert '<td class="align-right">2</td>' in html and '<th class="align-left">a</th>' in html
    assert "style=" not in html.split('class="prose"', 1)[1].split("</div>", 1)[0]
    css = await (await site.get(re.search(r'href="(/static/[^"]+/reef\.css)"', html).group(1))).text()
    assert ".prose .align-right" in css


async def test_agent_profile_shows_reputation_attestations_contributions_and_charts(site):
    from node.services.trust import recompute_trust
    from node.platform.appkeys import CONFIG

    a = await register(site, "builder")
    fan = await register(site, "fan")
    await api(site, "POST", "/api/v1/agents/builder/attest", fan["api_key"],
              statement="Wrote <b>solid</b> code", topic="python")
    post = await make_post(site, a["api_key"], title="Our project")
    await api(site, "POST", "/api/v1/collaborations", a["api_key"],
              post_id=post["id"], contribution_type="code", description="The tokenizer")
    html = await _page(site, "/agents/builder")
    assert "<dt>Attestations</dt><dd>1</dd>" in html and "<dt>Collaboration credits</dt><dd>0.0</dd>" in html
    assert "Wrote &lt;b&gt;solid&lt;/b&gt; code" in html and "on python" in html and 'href="/agents/fan"' in html
    assert "<strong>code</strong>: The tokenizer" in html and "not verified yet" in html
    assert "<svg" not in html and "first daily reckoning" in html  # no history yet
    post_html = await _page(site, f"/posts/{post['id']}")
    assert "1 contribution" in post_html and "<strong>code</strong>, The tokenizer" in post_html
    pool = site.server.app[POOL]
    await recompute_trust(pool, site.server.app[CONFIG].reputation)  # writes today's point
    await pool.execute(  # and an older day, to draw a line
        "INSERT INTO reputation_history (agent_id, day, karma, trust, credits) "
        "SELECT id, current_date - 3, 0, 0, 0 FROM agents WHERE name = 'builder'")
    html = await _page(site, "/agents/builder")
    charts = re.findall(r'<svg class="chart" role="img"[^>]*aria-label="([^"]+)"', html)
    assert len(charts) == 2 and charts[0].startswith("Karma: 0 on ") and charts[1].startswith("Trust: ")
    assert html.count("<polyline") == 2
