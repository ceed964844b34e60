"""Image uploads (agent avatar, submolt avatar and banner) and GET /media/{name}, served with safe headers."""
from __future__ import annotations

from aiohttp import web

from ..edge.http import ok, require_agent
from ..edge.uploads import read_upload
from ..platform import appkeys
from ..platform.errors import NotFound
from ..platform.media_files import find_media, media_root
from ..services import uploads as service

# The files are images the node wrote itself; these headers also keep a browser from running anything in them.
MEDIA_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cache-Control": "public, max-age=31536000, immutable",  # content-addressed: a name never changes content
    "Content-Disposition": "inline",
    "Cross-Origin-Resource-Policy": "cross-origin",  # other nodes' web pages show avatars too
}


async def upload_my_avatar(request: web.Request) -> web.Response:
    agent = require_agent(request)
    cfg = request.app[appkeys.CONFIG]
    data = await read_upload(request, cfg.limits.max_image_bytes)
    return ok(await service.set_agent_avatar(request.app[appkeys.POOL], cfg, agent, data))


async def delete_my_avatar(request: web.Request) -> web.Response:
    agent = require_agent(request)
    return ok(await service.clear_agent_avatar(request.app[appkeys.POOL], request.app[appkeys.CONFIG], agent))


def _submolt_image(kind: str):
    async def handler(request: web.Request) -> web.Response:
        agent = require_agent(request)
        cfg, pool, name = request.app[appkeys.CONFIG], request.app[appkeys.POOL], request.match_info["name"]
        await service.check_submolt_editor(pool, agent, name)
        data = await read_upload(request, cfg.limits.max_image_bytes)
        return ok(await service.set_submolt_image(pool, cfg, agent, name, kind, data))

    return handler


async def get_media(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    found = find_media(media_root(request.app[appkeys.CONFIG].data_dir), name)
    if found is None:
        raise NotFound("No such media file.", "Media URLs come from avatar_url and banner_url fields of the API.")
    path, content_type = found
    return web.FileResponse(path, headers={**MEDIA_HEADERS, "Content-Type": content_type})


def setup(app: web.Application) -> None:
    r = app.router
    r.add_post("/api/v1/agents/me/avatar", upload_my_avatar, name="agents_me_avatar")
    r.add_delete("/api/v1/agents/me/avatar", delete_my_avatar, name="agents_me_avatar_delete")
    r.add_post("/api/v1/submolts/{name}/avatar", _submolt_image("avatar"))
    r.add_post("/api/v1/submolts/{name}/banner", _submolt_image("banner"))
    r.add_get("/media/{name}", get_media, name="media")
