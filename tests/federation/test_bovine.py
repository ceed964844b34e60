"""Interop with a real peer: bovine-herd (PyPI, pinned in bovine-requirements.txt) in its own virtualenv, over
plain http on 127.0.0.1, with its sqlite store, served by hypercorn; driven through its client API.

A bovine actor follows a Reef agent and receives its posts; a Reef agent follows the bovine actor and
receives its notes. bovine's ways exercised here: it always requires signed GETs (authorized fetch), it does
not accept follows by itself (the test accepts through its client API, as its user would), its actor has no
shared inbox and a key named #serverKey, it sends `to` as a string, and it reads contexts only from its
(seeded) cache. This test must run wherever the suite runs: without bovine's virtualenv it fails, it does
not skip."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import pytest

from conftest import REPO, ReefNode, eventually, free_port

HERE = Path(__file__).resolve().parent
BOVINE_PYTHON = Path(os.environ.get("REEF_BOVINE_PYTHON", REPO / ".venv-bovine" / "bin" / "python"))
INSTALL_HINT = (
    "bovine-herd runs in its own virtualenv: `bash scripts/test.sh` makes it, or by hand: "
    "python3 -m venv .venv-bovine && .venv-bovine/bin/pip install -r tests/federation/bovine-requirements.txt "
    "(or point REEF_BOVINE_PYTHON at a python that has it)."
)


def ident(value: Any) -> Any:
    return value.get("id") if isinstance(value, dict) else value


@dataclass
class Bovine:
    """A running bovine-herd with one actor; client() drives that actor through bovine's client API."""

    port: int
    workdir: Path
    proc: subprocess.Popen[bytes]
    log: Path
    actor_id: str = ""
    handle: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def client(self, action: str, arg: str | None = None) -> Any:
        cmd = [str(BOVINE_PYTHON), str(HERE / "bovine_peer.py"), "client", action] + ([arg] if arg else [])
        cmd += ["--dir", str(self.workdir), "--port", str(self.port)]
        proc = await asyncio.create_subprocess_exec(*cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, f"bovine client {action} failed: {err.decode()[-3000:]}"
        return json.loads(out)

    async def inbox(self) -> list[dict[str, Any]]:
        return [i for i in await self.client("inbox") if isinstance(i, dict)]

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture
async def bovine(tmp_path: Path, http: aiohttp.ClientSession) -> AsyncIterator[Bovine]:
    if not BOVINE_PYTHON.exists():
        pytest.fail(f"no bovine virtualenv at {BOVINE_PYTHON}. {INSTALL_HINT}", pytrace=False)
    check = subprocess.run([str(BOVINE_PYTHON), "-c", "import bovine_herd, bovine, hypercorn, quart"],
                           capture_output=True, text=True, cwd=tmp_path)  # bovine writes a cache file in its cwd
    if check.returncode != 0:
        pytest.fail(f"{BOVINE_PYTHON} cannot import bovine-herd: {check.stderr[-800:]}\n{INSTALL_HINT}", pytrace=False)
    port = free_port()
    workdir = tmp_path / "bovine"
    workdir.mkdir()
    log = tmp_path / "bovine.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(BOVINE_PYTHON), str(HERE / "bovine_peer.py"), "serve", "--dir", str(workdir), "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT,
        )
    peer = Bovine(port, workdir, proc, log)
    try:
        async def serving() -> bool:
            assert proc.poll() is None, f"bovine exited:\n{peer.log_tail()}"
            try:
                async with http.get(f"{peer.url}/.well-known/nodeinfo") as resp:
                    return resp.status == 200
            except aiohttp.ClientError:
                return False
        await eventually(serving, timeout=60, what="bovine-herd to serve")
        info = json.loads((workdir / "actor.json").read_text())
        peer.actor_id, peer.handle = info["actor_id"], info["handle"]
        yield peer
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        print(f"----- bovine-herd log -----\n{peer.log_tail()}")


async def test_a_bovine_actor_follows_a_reef_agent_and_receives_its_posts(reef_nodes, bovine):
    [reef] = await reef_nodes(1)
    ann = await reef.register("ann")
    ann_url = f"{reef.url}/u/ann"

    # bovine's actor follows ann (through its outbox); Reef fetches the actor with a signed GET and accepts
    sent = await bovine.client("follow", ann_url)
    assert sent["status"] == 201
    async def listed() -> list[dict[str, Any]]:
        return (await reef.call("GET", "/api/v1/agents/ann/followers"))["agents"]
    [follower] = await eventually(listed, what="Reef to list the bovine actor as ann's follower")
    assert follower["name"] in ("moo", bovine.handle)
    row = (await reef.fetch("SELECT actor_url, inbox_url, shared_inbox_url FROM agents WHERE NOT is_local"))[0]
    assert row["actor_url"] == bovine.actor_id and row["shared_inbox_url"] is None
    async def following() -> bool:
        return ann_url in await bovine.client("following")
    await eventually(following, what="bovine to take Reef's Accept (ann in its following collection)")

    # ann posts: the Create(Page) goes to bovine's inbox, signed, and bovine keeps it
    post = (await reef.call("POST", "/api/v1/posts", ann, json_body={
        "submolt_name": "general", "title": "Hello bovine", "content": "From a **Reef** node."}))["post"]
    post_url = f"{reef.url}/post/{post['id']}"
    async def arrived() -> list[dict[str, Any]]:
        return [i for i in await bovine.inbox() if i.get("type") == "Create" and ident(i.get("object")) == post_url]
    [create] = await eventually(arrived, timeout=45, interval=0.5, what="ann's post in bovine's inbox")
    assert ident(create["actor"]) == ann_url  # bovine's proxy embeds the actor it resolved
    page = create["object"] if isinstance(create["object"], dict) else {}
    assert page.get("name", "Hello bovine") == "Hello bovine"
    delivered = await reef.fetch(
        """SELECT d.inbox_url, d.last_status FROM deliveries d JOIN activities a ON a.id = d.activity_id
           WHERE a.type = 'Create' AND a.body->'object'->>'id' = $1""",
        post_url,
    )
    assert [(r["inbox_url"], r["last_status"]) for r in delivered] == [(row["inbox_url"], 202)]


async def test_a_reef_agent_follows_a_bovine_actor_and_receives_its_notes(reef_nodes, bovine):
    [reef] = await reef_nodes(1)
    ann = await reef.register("ann")

    # ann follows moo@127.0.0.1:<port>: WebFinger, then the actor (bovine answers only signed GETs)
    followed = await reef.call("POST", f"/api/v1/agents/{bovine.handle}/follow", ann)
    assert followed["is_following"] is True
    unsigned = await reef.http.get(bovine.actor_id, headers={"Accept": "application/activity+json"})
    assert unsigned.status == 401  # authorized fetch: what Reef read, it read signed
    unsigned.release()

    # bovine does not accept by itself: its user accepts through the client API
    async def accepted() -> list[str]:
        return await bovine.client("accept")
    [follow_id] = await eventually(accepted, timeout=45, interval=0.5, what="ann's Follow in bovine's inbox")
    assert follow_id.startswith(f"{reef.url}/activities/")
    await eventually(reef.follows_accepted, what="Reef to take bovine's Accept")
    async def in_followers() -> bool:
        return f"{reef.url}/u/ann" in await bovine.client("followers")
    await eventually(in_followers, what="ann in the bovine actor's followers")

    # bovine's actor writes a public note: it reaches ann's node and her feed
    sent = await bovine.client("note", "Moo from bovine")
    assert sent["status"] == 201
    async def in_feed() -> list[dict[str, Any]]:
        feed = await reef.call("GET", "/api/v1/feed", ann, params={"sort": "new"})
        found = [p for p in feed["posts"] if "Moo from bovine" in p["content"]]
        received = await reef.fetch("SELECT type, error, left(body::text, 300) AS body FROM inbox_activities WHERE type <> 'Accept'")
        assert found, [dict(r) for r in received]
        return found
    [seen] = await eventually(in_feed, timeout=45, what="bovine's note in ann's feed")
    assert seen["author"]["name"] in ("moo", bovine.handle)
    assert await reef.fetchval("SELECT count(*) FROM inbox_activities WHERE error IS NOT NULL") == 0
    # what bovine sent: addressing as single strings, Public as the compact "as:Public" (read tolerantly)
    [raw] = await reef.fetch("SELECT body::text AS body FROM inbox_activities WHERE type = 'Create'")
    body = json.loads(raw["body"])
    assert body["to"] == "as:Public" and isinstance(body["cc"], str) and body["object"]["type"] == "Note"
    row = (await reef.fetch("SELECT p.ap_id, s.name, s.is_local FROM posts p JOIN submolts s ON s.id = p.submolt_id"))[0]
    assert (row["ap_id"], row["name"], row["is_local"]) == (body["object"]["id"], "general", True)
