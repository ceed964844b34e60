"""A fake fediverse server for inbox/delivery tests, and Reef nodes on fixed loopback ports.

The peer is a real aiohttp app on 127.0.0.1 with its own RSA key. It serves actor documents (Person and
Group, with a shared inbox) and objects, records what its inboxes receive (verifying each signature with
the key the node's actor document publishes), answers with scripted statuses, and signs and POSTs
activities to a node's inbox in Lemmy's shapes."""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import socket
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from federation import signatures as sig, sigcore

AS_PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
_PEER_KEYS = sigcore.generate_rsa_keypair()  # one key for every peer of a run: RSA generation is slow


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    key_id: str | None = None
    verified: bool | None = None
    error: str | None = None

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Peer:
    """Start with `await Peer.start()`; `peer.url` is its base URL; actors live at /users/<name> and /c/<name>."""

    server: TestServer | None = None
    received: list[Received] = field(default_factory=list)
    # The answer each inbox POST gets, in order: a status, (status, headers), or "hang" (wait for `release`,
    # then 202). When the script is empty: `status_by_path` for the inbox path, else `default_status`.
    script: list[Any] = field(default_factory=list)
    status_by_path: dict[str, int] = field(default_factory=dict)
    default_status: int = 202
    arrived: list[str] = field(default_factory=list)  # paths, recorded as requests arrive (before any hang)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    verify: bool = True
    private_key_pem: str = _PEER_KEYS[0]
    public_key_pem: str = _PEER_KEYS[1]
    groups: set[str] = field(default_factory=set)
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)  # path -> object served there
    _cond: asyncio.Condition = field(default_factory=asyncio.Condition)

    @classmethod
    async def start(cls, **kw: Any) -> "Peer":
        peer = cls(**kw)
        app = web.Application()
        app.router.add_get("/users/{name}", peer._actor)
        app.router.add_get("/c/{name}", peer._actor)
        app.router.add_post("/inbox", peer._inbox)
        app.router.add_post("/users/{name}/inbox", peer._inbox)
        app.router.add_post("/c/{name}/inbox", peer._inbox)
        app.router.add_get("/{tail:.*}", peer._document)
        peer.server = TestServer(app, host="127.0.0.1")
        await peer.server.start_server()
        return peer

    async def close(self) -> None:
        self.release.set()
        if self.server is not None:
            await self.server.close()

    @property
    def host(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def shared_inbox(self) -> str:
        return f"{self.url}/inbox"

    def actor(self, name: str) -> str:
        return f"{self.url}/c/{name}" if name in self.groups else f"{self.url}/users/{name}"

    def key_id(self, name: str) -> str:
        return self.actor(name) + "#main-key"

    def new_id(self, kind: str = "activities") -> str:
        return f"{self.url}/{kind}/{uuid.uuid4()}"

    # --- serving -------------------------------------------------------------------------------

    async def _actor(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        actor = self.actor(name)
        is_group = name in self.groups
        doc: dict[str, Any] = {
            "@context": ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"],
            "id": actor,
            "type": "Group" if is_group else "Person",
            "preferredUsername": name,
            "name": name.title(),
            "inbox": f"{actor}/inbox",
            "outbox": f"{actor}/outbox",
            "endpoints": {"sharedInbox": self.shared_inbox},
            "publicKey": {"id": f"{actor}#main-key", "owner": actor, "publicKeyPem": self.public_key_pem},
        }
        if is_group:
            doc["followers"] = f"{actor}/followers"
        return web.json_response(doc, content_type="application/activity+json")

    async def _document(self, request: web.Request) -> web.Response:
        doc = self.documents.get(request.path)
        if doc is None:
            return web.json_response({"error": "not found"}, status=404)
        if "__status__" in doc:  # a scripted failure, e.g. {"__status__": 500}
            return web.json_response({"error": "scripted"}, status=doc["__status__"])
        return web.json_response(doc, status=410 if doc.get("type") == "Tombstone" else 200,
                                 content_type="application/activity+json")

    async def _inbox(self, request: web.Request) -> web.Response:
        body = await request.read()
        rec = Received(request.path, dict(request.headers), body)
        if self.script:
            action = self.script.pop(0)
        else:
            action = self.status_by_path.get(request.path, self.default_status)
        async with self._cond:
            self.arrived.append(request.path)
            self._cond.notify_all()
        if self.verify:
            await self._check(request, rec)
        if action == "hang":
            await self.release.wait()
            action = 202
        status, headers = action if isinstance(action, tuple) else (action, {})
        async with self._cond:
            self.received.append(rec)
            self._cond.notify_all()
        return web.Response(status=int(status), headers=headers)

    async def _check(self, request: web.Request, rec: Received) -> None:
        """Verify the node's signature with the key its actor document publishes (fetched, as peers do)."""
        try:
            url = f"http://{request.host}{request.path_qs}"
            parsed = sig.parse_signature("POST", url, request.headers)
            rec.key_id = parsed.key_id
            sig.required_components_present(parsed, "POST")
            sig.check_freshness(parsed, request.headers, window=300)
            sigcore.verify_digest(request.headers, rec.body)
            async with aiohttp.ClientSession() as s:
                async with s.get(parsed.key_id.split("#")[0], headers={"Accept": "application/activity+json"}) as r:
                    doc = await r.json(content_type=None)
            sig.verify_signature(parsed, doc["publicKey"]["publicKeyPem"])
            rec.verified = True
        except (sig.SignatureError, aiohttp.ClientError, KeyError, ValueError) as exc:
            rec.verified, rec.error = False, str(exc)

    async def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 15.0) -> list[Received]:
        """Wait until what has been answered satisfies predicate (woken by each arrival, never polled)."""
        async with asyncio.timeout(timeout):
            async with self._cond:
                await self._cond.wait_for(lambda: predicate(self.received))
        return list(self.received)

    async def wait_count(self, n: int, timeout: float = 15.0) -> list[Received]:
        return await self.wait_for(lambda r: len(r) >= n, timeout)

    async def wait_arrived(self, n: int, timeout: float = 15.0) -> None:
        async with asyncio.timeout(timeout):
            async with self._cond:
                await self._cond.wait_for(lambda: len(self.arrived) >= n)

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [r.json for r in self.received if r.json.get("type") == type_]

    # --- sending -------------------------------------------------------------------------------

    def sign(self, url: str, body: bytes, name: str, **kw: Any) -> dict[str, str]:
        return sig.sign_request(
            "POST", url, key_id=self.key_id(name), private_key_pem=self.private_key_pem, body=body, **kw
        )

    async def post(
        self, inbox: str, activity: dict[str, Any], name: str | None = None, *,
        headers: dict[str, str] | None = None, body: bytes | None = None,
    ) -> tuple[int, str]:
        """Sign (as actor `name`, by default the activity's actor) and POST; returns (status, text)."""
        raw = json.dumps(activity).encode() if body is None else body
        if headers is None:
            signer = name or activity["actor"].rstrip("/").rsplit("/", 1)[1]
            headers = self.sign(inbox, raw, signer)
        async with aiohttp.ClientSession() as s:
            async with s.post(inbox, data=raw, headers=headers) as resp:
                return resp.status, await resp.text()

    # --- activities in Lemmy's shapes --------------------------------------------------------------

    def page(self, name: str, group: str, title: str, content: str = "", **extra: Any) -> dict[str, Any]:
        return {
            "id": self.new_id("post"), "type": "Page", "attributedTo": self.actor(name), "to": [group, AS_PUBLIC],
            "audience": group, "name": title, "content": f"<p>{content}</p>", "mediaType": "text/html",
            "source": {"content": content, "mediaType": "text/markdown"},
            "published": dt.datetime.now(dt.timezone.utc).isoformat(), **extra,
        }

    def note(self, name: str, in_reply_to: str, content: str, **extra: Any) -> dict[str, Any]:
        return {
            "id": self.new_id("comment"), "type": "Note", "attributedTo": self.actor(name), "to": [AS_PUBLIC],
            "inReplyTo": in_reply_to, "content": f"<p>{content}</p>", "mediaType": "text/html",
            "source": {"content": content, "mediaType": "text/markdown"},
            "published": dt.datetime.now(dt.timezone.utc).isoformat(), **extra,
        }

    def activity(self, type_: str, name: str, obj: Any, **extra: Any) -> dict[str, Any]:
        return {
            "@context": "https://www.w3.org/ns/activitystreams", "id": self.new_id(), "type": type_,
            "actor": self.actor(name), "object": obj, **extra,
        }


# --- Reef nodes -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Node:
    """A Reef node on 127.0.0.1:<port> whose domain is that, so that peers can fetch its actors."""

    app: web.Application
    client: Any
    port: int

    @property
    def pool(self) -> Any:
        from node.platform.appkeys import POOL

        return self.app[POOL]

    @property
    def cfg(self) -> Any:
        from node.platform.appkeys import CONFIG

        return self.app[CONFIG]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def workers(self) -> Any:
        from federation.workers import WORKERS

        return self.app[WORKERS]


async def start_node(
    aiohttp_server: Any, aiohttp_client: Any, make_config: Any, *, port: int | None = None, run_workers: bool = False,
    delivery: Any = None, federation: dict[str, Any] | None = None, tracing: dict[str, Any] | None = None,
) -> Node:
    """A node on a fixed port (its ids stay the same when it restarts on the same database)."""
    from federation.workers import DELIVERY_SETTINGS, RUN_WORKERS
    from node.app import create_app

    port = port or free_port()
    cfg = make_config(
        node={"domain": f"127.0.0.1:{port}", "data_dir": make_config().node.data_dir},
        federation={"allow_private_addresses": True, **(federation or {})},
        **({"tracing": tracing} if tracing else {}),
    )
    app = create_app(cfg)
    app[RUN_WORKERS] = run_workers
    if delivery is not None:
        app[DELIVERY_SETTINGS] = delivery
    server = await aiohttp_server(app, host="127.0.0.1", port=port)
    client = await aiohttp_client(server)
    return Node(app, client, port)


async def pump(*nodes: Node) -> None:
    """Run every worker of every node until nothing is left to do (what the running workers do on NOTIFY)."""
    for _ in range(10):
        done = 0
        for n in nodes:
            done += await n.workers.outbox.run_once()
            done += await n.workers.delivery.run_once()
            done += await n.workers.inbox.run_once()
        if not done:
            return
    raise AssertionError("the nodes kept finding work")
