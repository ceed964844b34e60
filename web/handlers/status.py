"""The node admin's status page (/admin/status): traffic charts, open sockets, the delivery queue per host with
retry and skip, disk and database size. The figures come from node.services.node_status."""
from __future__ import annotations

from typing import Any
from urllib.parse import quote_plus

from aiohttp import web

from node.platform import appkeys
from node.platform.errors import NotFound
from node.services import node_status as service

from ..charts import minutes_chart
from ..forms import read_form
from ..middleware import require_account
from ..render import redirect, render
from ..sessions import SESSION

_ACTIONS = {"retry": (service.retry_host, "made due now"), "skip": (service.skip_host, "given up")}


def _charts(data: service.StatusPage) -> list[Any]:
    at = [m.minute for m in data.minutes]
    return [
        minutes_chart("Requests", at, [("requests", [m.requests for m in data.minutes])]),
        minutes_chart("Errors", at, [("4xx", [m.errors_4xx for m in data.minutes]),
                                     ("5xx", [m.errors_5xx for m in data.minutes])]),
        minutes_chart("p99 latency", at, [("p99", [None if m.p99_seconds is None else m.p99_seconds * 1000
                                                   for m in data.minutes])], unit=" ms"),
        minutes_chart("Open WebSocket sockets", at, [("sockets", [m.open_sockets for m in data.minutes])]),
    ]


async def status_page(request: web.Request) -> web.Response:
    account = require_account(request)
    data = await service.status_page(request.app[appkeys.POOL], request.app[appkeys.CONFIG], account)
    return render(request, "admin_status.html", {"data": data, "charts": _charts(data), "notice": request.query.get("done")},
                  headers={"Cache-Control": "no-store"})


async def queue_action(request: web.Request) -> web.Response:
    """POST /admin/status/queue/{retry|skip} with the form's host. Refused with a 403, never a redirect to the
    login form: a missing CSRF token first, then a visitor who is not a node admin (logged in or not)."""
    form = await read_form(request)
    account = request[SESSION].account
    action = _ACTIONS.get(request.match_info["action"])
    if action is None:
        raise NotFound("No such queue action.", "Use retry or skip.")
    act, done = action
    host = service.check_host(form.get("host"))
    count = await act(request.app[appkeys.POOL], account, host)
    return redirect(f"/admin/status?done={quote_plus(f'{count} deliveries to {host} {done}')}")
