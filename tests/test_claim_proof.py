"""Claim proofs: the node fetches proof_url (posts on X through oEmbed) and claims only when the code is visible there."""
from __future__ import annotations

import asyncio
import json
import socket
from typing import Any, Awaitable, Callable

import pytest
from aiohttp import web
from web_support import PASSWORD, csrf_from

from federation.fetch import SafeResolver
from node.adapters import proof
from node.app import create_app
from node.platform.appkeys import POOL
from node.platform.config import ConfigError, build_config
from node.adapters.pagetext import shows_code, visible_text
from tests.factories import auth

HINT = "Post the verification code {code} publicly at that address, then submit again."


class ProofSite:
    """A local web site playing the humans' proof pages and X's oEmbed endpoint; it records every request."""

    def __init__(self) -> None:
        self.base = ""
        self.pages: dict[str, tuple[int, str, bytes, dict[str, str]]] = {}
        self.hits: list[str] = []
        self.oembed_status = 200
        self.oembed_answer: dict[str, Any] = {}
        self.oembed_queries: list[dict[str, str]] = []
        self.before_page: Callable[[], Awaitable[None]] | None = None
        self.release = asyncio.Event()  # lets /slow answer when the test is over

    def url(self, path: str) -> str:
        return self.base + path

    def page(self, path: str, body: str | bytes = "", *, status: int = 200, content_type: str = "text/html",
             headers: dict[str, str] | None = None) -> str:
        data = body.encode() if isinstance(body, str) else body
        self.pages[path] = (status, content_type, data, headers or {})
        return self.url(path)

    def redirect(self, path: str, location: str, status: int = 302) -> str:
        return self.page(path, status=status, headers={"Location": location})

    def x_post(self, author: str, text: str) -> None:
        """What X's oEmbed endpoint answers for a post by `author` saying `text`."""
        self.oembed_answer = {
            "url": f"https://twitter.com/{author}/status/1234567890",
            "author_name": author.title(),
            "author_url": f"https://twitter.com/{author}",
            "html": f'<blockquote class="twitter-tweet"><p lang="en" dir="ltr">{text}</p>&mdash; {author.title()} '
                    f'(@{author}) <a href="https://twitter.com/{author}/status/1234567890">May 1, 2026</a></blockquote>\n',
            "type": "rich",
            "provider_name": "Twitter",
        }

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/oembed", self._oembed)
        app.router.add_get("/slow", self._slow)
        app.router.add_get("/stream", self._stream)
        app.router.add_get("/{tail:.*}", self._page)
        return app

    async def _page(self, request: web.Request) -> web.Response:
        self.hits.append(request.path_qs)
        if self.before_page is not None:
            await self.before_page()
        found = self.pages.get(request.path)
        if found is None:
            return web.Response(status=404, text="no such page")
        status, content_type, body, headers = found
        return web.Response(status=status, body=body, headers={"Content-Type": content_type, **headers})

    async def _oembed(self, request: web.Request) -> web.Response:
        self.hits.append(request.path)
        self.oembed_queries.append(dict(request.query))
        if self.oembed_status != 200:
            return web.json_response({"error": "not found"}, status=self.oembed_status)
        return web.json_response(self.oembed_answer)

    async def _slow(self, request: web.Request) -> web.Response:
        self.hits.append(request.path)
        await self.release.wait()
        return web.Response(text="too late")

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        """A page with no Content-Length that goes on past any limit."""
        self.hits.append(request.path)
        resp = web.StreamResponse(headers={"Content-Type": "text/html"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        try:
            for _ in range(64):
                await resp.write(b"<p>" + b"x" * 1000 + b"</p>")
        except ConnectionResetError:
            pass  # the node stopped reading, as it must
        return resp


@pytest.fixture
async def site(aiohttp_server: Any) -> Any:
    s = ProofSite()
    server = await aiohttp_server(s.app(), host="127.0.0.1")
    s.base = f"http://127.0.0.1:{server.port}"
    yield s
    s.release.set()


@pytest.fixture
def make_node(aiohttp_client: Any, make_config: Any, site: ProofSite) -> Any:
    """A node whose proofs may be on loopback (the local site) and whose X oEmbed endpoint is the local site."""

    async def make(claims: dict[str, Any] | None = None, federation: dict[str, Any] | None = None) -> Any:
        cfg = make_config(
            claims={"fetch_timeout_seconds": 1, "max_proof_bytes": 4096, "x_oembed_url": site.url("/oembed"),
                    **(claims or {})},
            federation={"allow_private_addresses": True, **(federation or {})},
        )
        return await aiohttp_client(create_app(cfg))

    return make


@pytest.fixture
async def node(make_node: Any) -> Any:
    return await make_node()


async def register(client: Any, name: str) -> dict[str, Any]:
    resp = await client.post("/api/v1/agents/register", json={"name": name, "description": "proof tests"})
    assert resp.status == 201, await resp.text()
    agent = (await resp.json())["agent"]
    agent["claim_token"] = agent["claim_url"].rsplit("/", 1)[1]
    return agent


async def verify(client: Any, agent: dict[str, Any], proof_url: str, *, code: str | None = None,
                 by_token: bool = False) -> Any:
    body = {"claim_code": code or agent["verification_code"], "proof_url": proof_url}
    if by_token:
        body["claim_token"] = agent["claim_token"]
        return await client.post("/api/v1/agents/verify", json=body)
    return await client.post("/api/v1/agents/verify", json=body, headers=auth(agent["api_key"]))


async def assert_error(resp: Any, status: int, *words: str) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    body = await resp.json()
    assert body["success"] is False and body["error"] and body["hint"], body
    assert "Internal server error" not in body["error"]
    for word in words:
        assert word.lower() in (body["error"] + " " + body["hint"]).lower(), body
    return body


async def stored(client: Any, agent: dict[str, Any]) -> dict[str, Any]:
    """What the database holds about the agent's claim."""
    async with client.server.app[POOL].acquire() as conn:
        row = await conn.fetchrow(
            """SELECT a.status, a.claimed_at IS NOT NULL AS claimed, a.proof_url, o.display_name, o.x_handle
               FROM agents a LEFT JOIN owners o ON o.id = a.owner_id WHERE a.name = $1""", agent["name"])
        owners = await conn.fetchval("SELECT count(*) FROM owners")
        audit = await conn.fetchval("SELECT details FROM audit_log WHERE action = 'agent.claim'")
    return {**dict(row), "owners": owners, "audit": json.loads(audit) if isinstance(audit, str) else audit}


async def assert_unclaimed(client: Any, agent: dict[str, Any]) -> None:
    state = await stored(client, agent)
    assert (state["status"], state["claimed"], state["proof_url"], state["owners"]) == ("pending_claim", False, None, 0)
    status = await client.get("/api/v1/agents/status", headers=auth(agent["api_key"]))
    assert (await status.json())["status"] == "pending_claim"


# --- claims that prove -----------------------------------------------------------------------------

async def test_a_public_page_showing_the_code_claims_the_agent(node, site):
    agent = await register(node, "proven")
    url = site.page("/blog/my-agent", f"<html><head><title>My agent</title></head><body><article>"
                                      f"<p>My agent on Reef: {agent['verification_code'].lower()}.</p></article></body></html>")
    resp = await verify(node, agent, url)
    assert resp.status == 200, await resp.text()
    owner = (await resp.json())["agent"]["owner"]
    assert (owner["display_name"], owner["x_handle"], owner["proof_url"]) == ("127.0.0.1", None, url)
    state = await stored(node, agent)
    assert (state["status"], state["proof_url"], state["owners"]) == ("claimed", url, 1)
    assert (state["audit"]["proof_checked"], state["audit"]["proof_found_at"]) == (True, url)
    assert site.hits == ["/blog/my-agent"]


@pytest.mark.parametrize(("proof_url", "stored_url"), [
    ("https://x.com/real_human/status/1234567890", "https://x.com/real_human/status/1234567890"),
    # X shows a post under any name in the URL: the owner and the stored link name the account that wrote it.
    ("https://x.com/someone_famous/status/1234567890?s=20", "https://x.com/real_human/status/1234567890"),
    ("https://mobile.twitter.com/i/status/1234567890", "https://mobile.twitter.com/real_human/status/1234567890"),
    ("https://www.twitter.com/Real_Human/status/1234567890", "https://www.twitter.com/Real_Human/status/1234567890"),
])
async def test_an_x_post_is_read_through_oembed_and_names_its_author(node, site, proof_url, stored_url):
    agent = await register(node, "xproven")
    site.x_post("real_human", f"Claiming my agent {agent['verification_code']} on Reef")
    resp = await verify(node, agent, proof_url, by_token=True)
    assert resp.status == 200, await resp.text()
    assert site.oembed_queries == [{"url": proof_url, "omit_script": "1"}]
    assert site.hits == ["/oembed"]  # x.com itself is never fetched
    state = await stored(node, agent)
    assert (state["status"], state["x_handle"], state["display_name"]) == ("claimed", "real_human", "@real_human")
    assert state["proof_url"] == stored_url


async def test_redirects_are_followed_up_to_five_hops(node, site):
    agent = await register(node, "redirected")
    site.page("/final", f"<p>{agent['verification_code']}</p>")
    for hop in range(1, 5):
        site.redirect(f"/r{hop}", f"/r{hop + 1}", status=301 if hop % 2 else 307)
    site.redirect("/r5", site.url("/final"))
    resp = await verify(node, agent, site.url("/r1"))
    assert resp.status == 200, await resp.text()
    assert site.hits == ["/r1", "/r2", "/r3", "/r4", "/r5", "/final"]
    state = await stored(node, agent)
    assert (state["proof_url"], state["audit"]["proof_found_at"]) == (site.url("/r1"), site.url("/final"))


# --- claims that do not prove: 422, nothing stored, the claim can be retried -----------------------

@pytest.mark.parametrize("template", [
    "<p>Hello, I own an agent.</p>",
    "<p>Hello</p><!-- {code} -->",
    "<p>Hello</p><!-- {code}",
    "<p>Hello</p><script>var claim = '{code}';</script>",
    "<p>Hello</p><script type='application/ld+json'>{{\"text\": \"{code}\"}}</script>",
    "<style>.{code} {{ color: red }}</style><p>Hello</p>",
    "<template><p>{code}</p></template>",
    "<p><a href='https://example.org/{code}' title='{code}'>Hello</a></p>",
    "<p>x{code}</p>",
    "<p>{code}Z</p>",
    "<p>{code}-2</p>",
], ids=["absent", "comment", "unclosed-comment", "script", "json-ld", "style", "template", "attributes",
        "prefixed", "suffixed", "hyphenated"])
async def test_a_page_not_showing_the_code_is_422_and_claims_nothing(node, site, template):
    agent = await register(node, "unproven")
    code = agent["verification_code"]
    url = site.page("/post", "<html><body>" + template.format(code=code) + "</body></html>")
    body = await assert_error(await verify(node, agent, url), 422, code)
    assert body["hint"] == HINT.format(code=code)
    await assert_unclaimed(node, agent)
    # The human posts the code and submits again.
    site.page("/post", f"<html><body><p>Verifying: {code}</p></body></html>")
    assert (await verify(node, agent, url)).status == 200
    assert (await stored(node, agent))["status"] == "claimed"


async def test_an_x_post_without_the_code_or_not_public_is_422(node, site):
    agent = await register(node, "xunproven")
    code = agent["verification_code"]
    post = "https://x.com/real_human/status/1234567890"
    site.x_post("real_human", "Just setting up my agent")
    body = await assert_error(await verify(node, agent, post), 422, "does not show the code")
    assert body["hint"] == HINT.format(code=code)
    site.oembed_status = 404
    await assert_error(await verify(node, agent, post), 422, "no public post", "protected")
    # An X profile or search page is no post: refused before anything is fetched.
    before = len(site.hits)
    await assert_error(await verify(node, agent, "https://x.com/real_human"), 422, "address of a post", code)
    await assert_error(await verify(node, agent, "https://twitter.com/search?q=" + code), 422, "address of a post")
    assert len(site.hits) == before
    # An oEmbed answer that names no author proves nothing.
    site.oembed_status = 200
    site.x_post("real_human", f"Claiming {code}")
    site.oembed_answer.pop("author_url")
    await assert_error(await verify(node, agent, post), 502, "X did not describe the post")
    await assert_unclaimed(node, agent)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(("case", "status", "words"), [
    ("missing", 422, ("nothing was found", "404", "check the address")),
    ("gone", 422, ("410",)),
    ("forbidden", 422, ("not public", "403", "without logging in")),
    ("server-error", 502, ("answered 500",)),
    ("timeout", 504, ("did not load within 1 s", "try again")),
    ("too-large", 413, ("larger than the 4096 bytes",)),
    ("too-large-streamed", 413, ("larger than the 4096 bytes",)),
    ("redirect-loop", 502, ("redirects more than 5 times",)),
    ("redirect-to-file", 422, ("not an http(s) address",)),
    ("redirect-nowhere", 502, ("without saying where",)),
    ("image", 422, ("not a web page", "image/png")),
    ("connection-refused", 502, ("could not connect to 127.0.0.1",)),
])
async def test_unreadable_proofs_answer_json_with_a_hint_and_claim_nothing(node, site, case, status, words):
    agent = await register(node, "unreadable")
    code = agent["verification_code"]
    shows = f"<p>{code}</p>"
    url = {
        "missing": lambda: site.url("/nothing-here"),
        "gone": lambda: site.page("/gone", shows, status=410),
        "forbidden": lambda: site.page("/private", shows, status=403),
        "server-error": lambda: site.page("/broken", shows, status=500),
        "timeout": lambda: site.url("/slow"),
        "too-large": lambda: site.page("/big", shows + "<p>" + "x" * 5000 + "</p>"),
        "too-large-streamed": lambda: site.url("/stream"),
        "redirect-loop": lambda: site.redirect("/loop", "/loop"),
        "redirect-to-file": lambda: site.redirect("/to-file", "file:///etc/passwd"),
        "redirect-nowhere": lambda: site.page("/nowhere", status=302),
        "image": lambda: site.page("/code.png", code, content_type="image/png"),
        "connection-refused": lambda: f"http://127.0.0.1:{_closed_port()}/post",
    }[case]()
    body = await assert_error(await verify(node, agent, url), status, *words)
    if status >= 500:
        assert body["request_id"]
    await assert_unclaimed(node, agent)


async def test_non_http_proof_urls_are_refused_before_any_fetch(node, site):
    agent = await register(node, "schemes")
    for url in ("ftp://127.0.0.1/post", "file:///etc/passwd", "javascript:alert(1)", "http://user:pw@127.0.0.1/"):
        resp = await verify(node, agent, url.replace("127.0.0.1", site.base.removeprefix("http://")))
        await assert_error(resp, 422, "http" if "user" not in url else "password")
    assert site.hits == []
    await assert_unclaimed(node, agent)


class PretendPublic(SafeResolver):
    """The node's resolver, except that proof.example is a 'public' site that happens to be served on 127.0.0.1."""

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[Any]:
        if host == "proof.example":
            return [{"hostname": host, "host": "127.0.0.1", "port": port, "family": socket.AF_INET, "proto": 0,
                     "flags": socket.AI_NUMERICHOST}]
        return await super().resolve(host, port, family)


async def test_private_addresses_are_refused_even_after_a_redirect(make_node, site, monkeypatch):
    monkeypatch.setattr(proof, "SafeResolver", PretendPublic)
    node = await make_node(federation={"allow_private_addresses": False})
    agent = await register(node, "ssrf")
    port = site.base.rsplit(":", 1)[1]
    site.page("/post", f"<p>{agent['verification_code']}</p>")
    site.redirect("/to-literal", f"http://127.0.0.1:{port}/post")
    site.redirect("/to-name", f"http://localhost:{port}/post")
    site.redirect("/to-mapped", f"http://[::ffff:127.0.0.1]:{port}/post")
    for url in (f"http://127.0.0.1:{port}/post", f"http://localhost:{port}/post", f"http://0.0.0.0:{port}/post",
                f"http://proof.example:{port}/to-literal", f"http://proof.example:{port}/to-name",
                f"http://proof.example:{port}/to-mapped"):
        await assert_error(await verify(node, agent, url), 422, "not a public address", "public")
    assert site.hits == ["/to-literal", "/to-name", "/to-mapped"]  # the private targets were never asked
    await assert_unclaimed(node, agent)
    # The same page through the "public" name claims: the refusals above were about the addresses.
    assert (await verify(node, agent, f"http://proof.example:{port}/post")).status == 200
    assert (await stored(node, agent))["status"] == "claimed"


async def test_a_wrong_code_fetches_nothing(node, site):
    agent = await register(node, "wrongcode")
    url = site.page("/post", f"<p>{agent['verification_code']}</p>")
    await assert_error(await verify(node, agent, url, code="reef-2222" if agent["verification_code"] != "reef-2222"
                                    else "reef-3333"), 400, "wrong verification code")
    assert site.hits == []
    await assert_unclaimed(node, agent)


async def test_the_fetch_holds_no_lock_and_a_claim_made_meanwhile_wins(node, site):
    """The proof is fetched outside the transaction: the agent's row can change meanwhile, and the claim re-checks."""
    agent = await register(node, "raced")
    url = site.page("/post", f"<p>{agent['verification_code']}</p>")

    async def claimed_elsewhere() -> None:
        async with node.server.app[POOL].acquire() as conn:
            await conn.execute("SET lock_timeout = '3s'")  # were the row locked during the fetch, this would fail
            await conn.execute("UPDATE agents SET claimed_at = now(), status = 'claimed' WHERE name = $1", agent["name"])

    site.before_page = claimed_elsewhere
    await assert_error(await verify(node, agent, url), 409, "already claimed")
    state = await stored(node, agent)
    assert (state["status"], state["proof_url"], state["owners"]) == ("claimed", None, 0)


async def test_verify_proof_false_stores_the_url_unchecked(make_node, site):
    node = await make_node(claims={"verify_proof": False})
    agent = await register(node, "vouched")
    url = site.page("/post", "<p>no code here</p>")
    resp = await verify(node, agent, url)
    assert resp.status == 200, await resp.text()
    state = await stored(node, agent)
    assert (state["status"], state["proof_url"], state["audit"]["proof_checked"]) == ("claimed", url, False)
    assert site.hits == []
    other = await register(node, "vouched_x")
    assert (await verify(node, other, "https://x.com/somebody/status/1")).status == 200
    assert (await stored(node, other))["x_handle"] == "somebody"  # read from the URL, as before
    page = await (await node.get("/claim/" + (await register(node, "vouched_web"))["claim_token"])).text()
    assert "(optional)" in page and "visible to anyone" not in page
    assert site.hits == []


# --- the web claim page ----------------------------------------------------------------------------

async def test_web_claim_shows_the_proof_error_and_keeps_the_input(node, site):
    agent = await register(node, "webproof")
    code = agent["verification_code"]
    path = "/claim/" + agent["claim_token"]
    page = await node.get(path)
    html = await page.text()
    assert page.status == 200 and "visible to anyone" in html and "(optional)" not in html.split('for="proof_url"')[1][:60]
    assert 'placeholder="https://x.com/you/status/…" aria-describedby="proof-hint" required' in html
    token = csrf_from(html)
    form = {"csrf_token": token, "verification_code": code, "public_name": "Reef Fan",
            "email": "fan@example.org", "password": PASSWORD}

    def kept(html: str, proof_url: str) -> bool:
        return (f'value="{code}"' in html and f'value="{proof_url}"' in html and 'value="Reef Fan"' in html
                and 'value="fan@example.org"' in html and PASSWORD not in html)

    empty = await node.post(path, data={**form, "proof_url": ""})
    html = await empty.text()
    assert empty.status == 422 and "Enter the proof URL." in html and f"Post the verification code {code} publicly" in html
    assert kept(html, "")

    missing = site.page("/post", "<p>I have an agent.</p><!-- " + code + " -->")
    resp = await node.post(path, data={**form, "proof_url": missing})
    html = await resp.text()
    assert resp.status == 422 and 'role="alert"' in html
    assert f"does not show the code {code}." in html and HINT.format(code=code) in html
    assert kept(html, missing)

    slow = site.url("/slow")
    resp = await node.post(path, data={**form, "proof_url": slow})
    html = await resp.text()
    assert resp.status == 504 and "did not load within 1 s" in html and kept(html, slow)
    await assert_unclaimed(node, agent)

    good = site.page("/good", f"<p>This is my agent: {code}</p>")
    done = await node.post(path, data={**form, "proof_url": good}, allow_redirects=False)
    assert done.status == 303 and done.headers["Location"] == "/dashboard/agents/webproof?claimed=1"
    state = await stored(node, agent)
    assert (state["status"], state["proof_url"], state["display_name"]) == ("claimed", good, "Reef Fan")


async def test_web_claim_of_an_x_post_names_its_author(node, site):
    agent = await register(node, "webx")
    path = "/claim/" + agent["claim_token"]
    site.x_post("real_human", f"my agent: {agent['verification_code']}")
    resp = await node.post(path, data={
        "csrf_token": csrf_from(await (await node.get(path)).text()), "verification_code": agent["verification_code"],
        "proof_url": "https://x.com/someone_famous/status/1234567890", "email": "x@example.org", "password": PASSWORD,
    }, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    state = await stored(node, agent)
    assert (state["x_handle"], state["display_name"]) == ("real_human", "@real_human")
    assert state["proof_url"] == "https://x.com/real_human/status/1234567890"


async def test_web_claim_with_a_wrong_code_fetches_nothing(node, site):
    agent = await register(node, "webwrong")
    path = "/claim/" + agent["claim_token"]
    url = site.page("/post", f"<p>{agent['verification_code']}</p>")
    resp = await node.post(path, data={
        "csrf_token": csrf_from(await (await node.get(path)).text()), "verification_code": "reef-NOPE",
        "proof_url": url, "email": "w@example.org", "password": PASSWORD,
    })
    html = await resp.text()
    assert resp.status == 400 and "Wrong verification code." in html and f'value="{url}"' in html
    assert site.hits == []
    await assert_unclaimed(node, agent)


# --- the text check and the config -----------------------------------------------------------------

@pytest.mark.parametrize(("html", "found"), [
    ("<p>reef-AB12</p>", True),
    ("<p>Claiming REEF-ab12.</p>", True),
    ("<p>(reef-AB12)</p><p>next</p>", True),
    ("<p>reef&#45;AB12 &amp; more</p>", True),
    ("<span>reef-</span><b>AB12</b>", True),  # inline elements render as one word
    ("<p>reef-AB12</p><p>34</p>", True),  # blocks do not join
    ("<meta property='og:description' content='My agent: reef-AB12'>", True),
    ("<p>xreef-AB12</p>", False),
    ("<p>reef-AB123</p>", False),
    ("<p>reef-AB12_x</p>", False),
    ("<!-- reef-AB12 --><p>hi</p>", False),
    ("<script>reef-AB12</script><p>hi</p>", False),
    ("<SCRIPT>reef-AB12</SCRIPT><p>hi</p>", False),
    ("<meta name='keywords' content='reef-AB12'>", False),
    ("<p>hi</p><!x reef-AB12", False),
])
def test_visible_text_and_the_code_as_a_whole_token(html, found):
    assert shows_code(visible_text(html), "reef-AB12") is found


def test_claims_config_defaults_env_and_bad_values():
    cfg = build_config({}, env={})
    assert (cfg.claims.verify_proof, cfg.claims.fetch_timeout_seconds, cfg.claims.max_proof_bytes) == (True, 10, 1_000_000)
    assert cfg.claims.x_oembed_url == "https://publish.twitter.com/oembed"
    assert build_config({}, env={"REEF_CLAIMS__VERIFY_PROOF": "false"}).claims.verify_proof is False
    for claims, needle in (({"fetch_timeout_seconds": 0}, "[claims] fetch_timeout_seconds"),
                           ({"max_proof_bytes": -1}, "[claims] max_proof_bytes"),
                           ({"x_oembed_url": "ftp://oembed.example"}, "[claims] x_oembed_url"),
                           ({"x_oembed_url": "https://oembed.example/?format=json"}, "[claims] x_oembed_url"),
                           ({"verify_proof": "yes"}, "[claims] verify_proof")):
        with pytest.raises(ConfigError) as info:
            build_config({"claims": claims}, env={})
        assert needle in str(info.value) and info.value.hint
