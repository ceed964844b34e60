"""A remote server for federation tests: a real aiohttp app on 127.0.0.1 serving actors, WebFinger and keys."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from aiohttp import web

from federation.signatures import sign_request

from federation.sigcore import generate_rsa_keypair
from node.platform.config import Config

AP = "application/activity+json"
AS_TYPE = "https://www.w3.org/ns/activitystreams#type"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Seen:
    method: str
    path_qs: str
    headers: dict[str, str]


@dataclass
class PeerActor:
    url: str
    name: str
    private_key_pem: str
    public_key_pem: str
    doc: dict[str, Any] = field(default_factory=dict)

    @property
    def key_id(self) -> str:
        return self.url + "#main-key"

    def sign_get(self, url: str) -> dict[str, str]:
        return sign_request("GET", url, key_id=self.key_id, private_key_pem=self.private_key_pem,
                            headers={"Accept": AP})

    def rotate_key(self) -> None:
        self.private_key_pem, self.public_key_pem = generate_rsa_keypair()
        self.doc["publicKey"]["publicKeyPem"] = self.public_key_pem


class Peer:
    """Records every request it gets; serves registered documents, WebFinger answers and custom handlers."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.docs: dict[str, Any] = {}
        self.jrd: dict[str, dict[str, Any]] = {}
        self.handlers: dict[str, Handler] = {}
        self.server: Any = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def start(self, aiohttp_server: Any) -> "Peer":
        self.server = await aiohttp_server(self.app())
        return self

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    @property
    def base(self) -> str:
        return f"http://{self.host}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(Seen(request.method, request.path_qs, dict(request.headers)))
        custom = self.handlers.get(request.path)
        if custom is not None:
            return await custom(request)
        if request.path == "/.well-known/webfinger":
            jrd = self.jrd.get(request.query.get("resource", ""))
            if jrd is None:
                raise web.HTTPNotFound()
            return web.json_response(jrd, content_type="application/jrd+json")
        doc = self.docs.get(request.path)
        if doc is None:
            raise web.HTTPNotFound()
        return web.Response(text=json.dumps(doc), content_type=AP)

    def add_actor(self, name: str, *, kind: str = "Person", path: str | None = None, extra: dict | None = None,
                  webfinger_name: str | None = None) -> PeerActor:
        path = path or (f"/c/{name}" if kind == "Group" else f"/users/{name}")
        url = self.base + path
        private, public = generate_rsa_keypair()
        doc: dict[str, Any] = {
            "@context": ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"],
            "id": url,
            "type": kind,
            "preferredUsername": name,
            "name": name.capitalize(),
            "summary": f"<p>I am <b>{name}</b> &amp; friends.</p><p>Second line.</p>",
            "inbox": url + "/inbox",
            "outbox": url + "/outbox",
            "followers": url + "/followers",
            "endpoints": {"sharedInbox": self.base + "/inbox"},
            "icon": {"type": "Image", "url": self.base + f"/media/{name}.png"},
            "publicKey": {"id": url + "#main-key", "owner": url, "publicKeyPem": public},
        }
        doc.update(extra or {})
        self.docs[path] = doc
        acct = f"acct:{webfinger_name or name}@{self.host}"
        links = self.jrd.setdefault(acct, {"subject": acct, "links": []})["links"]
        links.append({"rel": "self", "type": AP, "href": url, "properties": {AS_TYPE: kind}})
        return PeerActor(url, name, private, public, doc)

    def requests_to(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path_qs.split("?")[0] == path]


def node_config(make_config: Callable[..., Config], **federation: Any) -> Config:
    """A test node on loopback as the issue says: http, domain 127.0.0.1:8080, private addresses allowed."""
    fed = {"allow_private_addresses": True}
    fed.update(federation)
    return make_config(node={"domain": "127.0.0.1:8080", "https": False}, federation=fed)
