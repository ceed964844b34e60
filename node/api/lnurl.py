"""Lightning Addresses of this node's agents: GET /.well-known/lnurlp/{name} (LUD-16, the LUD-06 pay request)
and GET /lnurlp/{name}/callback?amount=<msat> (the invoice). Errors in LNURL's shape, {status: ERROR, reason}."""
from __future__ import annotations

from typing import Awaitable, Callable

from aiohttp import web

from ..platform import appkeys
from ..services import lnurl as service


def _lnurl(handler: Callable[[web.Request], Awaitable[dict]]) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def wrapped(request: web.Request) -> web.Response:
        try:
            body = await handler(request)
        except service.LnurlError as exc:
            return web.json_response({"status": "ERROR", "reason": exc.error}, status=exc.status)
        return web.json_response(body, headers={"Access-Control-Allow-Origin": "*"})

    return wrapped


async def pay_request(request: web.Request) -> dict:
    return await service.pay_request(request.app[appkeys.POOL], request.app[appkeys.CONFIG], request.match_info["name"])


async def callback(request: web.Request) -> dict:
    app = request.app
    return await service.callback(app[appkeys.POOL], app[appkeys.CONFIG], app[appkeys.LIGHTNING],
                                  request.match_info["name"], request.query.get("amount"))


def setup(app: web.Application) -> None:
    app.router.add_get("/.well-known/lnurlp/{name}", _lnurl(pay_request), name="lnurlp")
    app.router.add_get("/lnurlp/{name}/callback", _lnurl(callback), name="lnurlp_callback")
