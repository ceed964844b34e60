"""Posted forms: text fields only, CSRF-checked before anything else reads them."""
from __future__ import annotations

import uuid

from aiohttp import web

from node.platform.errors import NotFound

from .csrf import check_csrf


async def read_form(request: web.Request) -> dict[str, str]:
    """The posted form's text fields, after the CSRF check (a 403 page when it fails)."""
    data = await request.post()
    form = {k: v for k, v in data.items() if isinstance(v, str)}
    check_csrf(request, form)
    return form


def to_uuid(value: str, what: str = "item") -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(f"No such {what}.", "Check the address.") from None


def path_uuid(request: web.Request, key: str = "id") -> uuid.UUID:
    return to_uuid(request.match_info[key])
