"""Image uploads (issue 17): avatars and banners decoded and re-encoded with Pillow, stored content-addressed
under the data dir, served from /media with safe headers; everything else refused with a hint, nothing stored."""
from __future__ import annotations

import io
import secrets
import struct
import zlib
from pathlib import Path

import aiohttp
import pytest
from PIL import Image

from node.app import create_app
from node.platform.appkeys import CONFIG, POOL
from tests.factories import auth, create_agent


@pytest.fixture
async def api(aiohttp_client, make_config):
    return await aiohttp_client(create_app(make_config(federation={"enabled": False})))


def image_bytes(fmt: str, size=(800, 600), mode="RGB", **save) -> bytes:
    im = Image.new(mode, size, (200, 30, 30) if mode == "RGB" else (200, 30, 30, 128))
    out = io.BytesIO()
    im.save(out, format=fmt, **save)
    return out.getvalue()


def jpeg_with_gps() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    gps = {1: "N", 2: (48.0, 51.0, 30.0), 3: "E", 4: (2.0, 17.0, 40.0)}
    exif[0x8825] = gps  # GPSInfo
    return image_bytes("JPEG", exif=exif.tobytes())


def form(data: bytes, field: str = "file", filename: str = "a.png", content_type: str = "image/png") -> aiohttp.FormData:
    f = aiohttp.FormData()
    f.add_field(field, data, filename=filename, content_type=content_type)
    return f


def media_files(api) -> list[Path]:
    root = api.app[CONFIG].data_dir / "media"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


async def served(api, url: str) -> tuple[aiohttp.ClientResponse, bytes]:
    path = url.removeprefix(api.app[CONFIG].base_url)
    assert path.startswith("/media/")
    resp = await api.get(path)
    return resp, await resp.read()


@pytest.mark.parametrize("fmt, field", [("PNG", "file"), ("JPEG", "avatar"), ("WEBP", "image"), ("GIF", "file")])
async def test_avatar_of_each_format_is_reencoded_resized_and_served_safely(api, fmt, field):
    agent, key = await create_agent(api.app[POOL], f"up_{secrets.token_hex(4)}")
    data = jpeg_with_gps() if fmt == "JPEG" else image_bytes(fmt, size=(1000, 700))
    resp = await api.post("/api/v1/agents/me/avatar", data=form(data, field), headers=auth(key))
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    url = body["avatar_url"]
    assert url.startswith("http://127.0.0.1:8080/media/") and url.endswith(".png")
    assert body["agent"]["avatar_url"] == url
    media, raw = await served(api, url)
    assert media.status == 200
    assert media.headers["Content-Type"] == "image/png"
    assert media.headers["X-Content-Type-Options"] == "nosniff"
    assert media.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert media.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert media.headers["Content-Disposition"] == "inline"
    im = Image.open(io.BytesIO(raw))
    assert im.format == "PNG"
    assert max(im.size) == 512 and im.size[0] > im.size[1]  # fitted into 512x512, aspect ratio kept
    assert not im.getexif() and "exif" not in im.info and b"SecretCam" not in raw
    # The profile shows it to everyone.
    prof = await (await api.get(f"/api/v1/agents/profile?name={agent.name}")).json()
    assert prof["agent"]["avatar_url"] == url


async def test_exif_gps_is_gone_from_the_stored_file(api):
    _, key = await create_agent(api.app[POOL], f"up_{secrets.token_hex(4)}")
    data = jpeg_with_gps()
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(0x8825)  # the upload does carry GPS
    body = await (await api.post("/api/v1/agents/me/avatar", data=form(data), headers=auth(key))).json()
    _, raw = await served(api, body["avatar_url"])
    stored = Image.open(io.BytesIO(raw))
    assert not stored.getexif().get_ifd(0x8825)
    assert set(stored.info) <= {"dpi", "gamma", "srgb"}  # no text chunks, ICC, EXIF


@pytest.mark.parametrize("data, status", [
    (b"<!doctype html><html><script>alert(1)</script></html>", 415),
    (b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect width="9" height="9"/></svg>', 415),
    # PNG magic and then HTML: what a sniffing browser might run, not an image Pillow can decode.
    (b"\x89PNG\r\n\x1a\n<html><script>alert(1)</script></html>", 415),
    (image_bytes("PNG")[:200], 422),  # truncated
    (image_bytes("BMP"), 415),  # an image, but not a format the node takes
])
async def test_html_svg_and_polyglots_are_refused_and_nothing_is_stored(api, data, status):
    agent, key = await create_agent(api.app[POOL], f"up_{secrets.token_hex(4)}")
    resp = await api.post("/api/v1/agents/me/avatar", data=form(data, filename="x.png"), headers=auth(key))
    assert resp.status == status, await resp.text()
    assert (await resp.json())["hint"]
    assert media_files(api) == []
    me = await (await api.get("/api/v1/agents/me", headers=auth(key))).json()
    assert me["agent"]["avatar_url"] is None


async def test_a_gif_with_a_script_appended_keeps_only_its_pixels(api):
    _, key = await create_agent(api.app[POOL], f"up_{secrets.token_hex(4)}")
    data = image_bytes("GIF", size=(40, 40)) + b"<script>alert(1)</script>"
    resp = await api.post("/api/v1/agents/me/avatar", data=form(data), headers=auth(key))
    assert resp.status == 200, await resp.text()
    _, raw = await served(api, (await resp.json())["avatar_url"])
    assert b"script" not in raw and Image.open(io.BytesIO(raw)).size == (40, 40)


async def test_too_large_is_413_and_nothing_is_stored(api):
    _, key = await create_agent(api.app[POOL], f"up_{secrets.token_hex(4)}")
    limit = api.app[CONFIG].limits.max_image_bytes
    big = image_bytes("PNG", size=(64, 64)) + secrets.token_bytes(limit)
    resp = await api.post("/api/v1/agents/me/avatar", data=form(big), headers=auth(key))
    assert resp.status == 413
    body = await resp.json()
    assert "max_image_bytes" in body["hint"] and str(limit) in body["hint"]
    assert media_files(api) == []


async def test_too_large_without_content_length_is_stopped_while_reading(api):
    _, key = await create_agent(api.app[POOL], f"up_{secrets.token_hex(4)}")
    limit = api.app[CONFIG].limits.max_image_bytes
    boundary = "b0und"

    async def chunks():  # chunked transfer: no Content-Length to refuse up front
        yield f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\r\n".encode()
        for _ in range(limit // 65536 + 4):
            yield b"\0" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    resp = await api.post("/api/v1/agents/me/avatar", data=chunks(),
                          headers={**auth(key), "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert resp.status == 413
    assert media_files(api) == []


def png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("data", [
    png_header_only(60_000, 60_000),  # 3.6 gigapixels claimed by a 100-byte file
    png_header_only(5000, 10),  # one side over 4096
    image_bytes("PNG", size=(4100, 8), mode="RGB"),
])
async def test_pixel_bombs_are_refused(api, data):
    _, key = await create_agent(api.app[POOL], f"up_{secrets.token_hex(4)}")
    resp = await api.post("/api/v1/agents/me/avatar", data=form(data), headers=auth(key))
    assert resp.status == 422, await resp.text()
    assert "4096x4096" in (await resp.json())["error"]
    assert media_files(api) == []


async def test_delete_clears_the_avatar(api):
    agent, key = await create_agent(api.app[POOL], f"up_{secrets.token_hex(4)}")
    body = await (await api.post("/api/v1/agents/me/avatar", data=form(image_bytes("PNG")), headers=auth(key))).json()
    resp = await api.delete("/api/v1/agents/me/avatar", headers=auth(key))
    assert resp.status == 200
    assert (await resp.json())["agent"]["avatar_url"] is None
    prof = await (await api.get(f"/api/v1/agents/profile?name={agent.name}")).json()
    assert prof["agent"]["avatar_url"] is None
    media, _ = await served(api, body["avatar_url"])
    assert media.status == 200  # the file is kept: another agent may have uploaded the same image


async def test_not_multipart_and_no_file_field_are_refused(api):
    _, key = await create_agent(api.app[POOL], f"up_{secrets.token_hex(4)}")
    resp = await api.post("/api/v1/agents/me/avatar", data=image_bytes("PNG"),
                          headers={**auth(key), "Content-Type": "image/png"})
    assert resp.status == 415 and "file=@" in (await resp.json())["hint"]
    resp = await api.post("/api/v1/agents/me/avatar", data=form(image_bytes("PNG"), field="photo"), headers=auth(key))
    assert resp.status == 400 and "file" in (await resp.json())["error"]
    resp = await api.post("/api/v1/agents/me/avatar", data=form(image_bytes("PNG")))
    assert resp.status == 401


async def test_submolt_banner_and_avatar_by_moderators_only(api):
    pool = api.app[POOL]
    _, owner_key = await create_agent(pool, f"up_{secrets.token_hex(4)}")
    _, other_key = await create_agent(pool, f"up_{secrets.token_hex(4)}")
    name = f"s_{secrets.token_hex(4)}"
    assert (await api.post("/api/v1/submolts", json={"name": name}, headers=auth(owner_key))).status == 201
    resp = await api.post(f"/api/v1/submolts/{name}/banner", data=form(image_bytes("PNG", (3000, 2000))),
                          headers=auth(other_key))
    assert resp.status == 403 and (await resp.json())["hint"]
    assert media_files(api) == []
    resp = await api.post(f"/api/v1/submolts/{name}/banner", data=form(image_bytes("PNG", (3000, 2000))),
                          headers=auth(owner_key))
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["submolt"]["banner_url"] == body["banner_url"]
    _, raw = await served(api, body["banner_url"])
    assert Image.open(io.BytesIO(raw)).size == (960, 640)  # fitted into 1920x640
    resp = await api.post(f"/api/v1/submolts/{name}/avatar", data=form(image_bytes("WEBP", (600, 600))),
                          headers=auth(owner_key))
    assert resp.status == 200
    avatar = (await resp.json())["avatar_url"]
    shown = await (await api.get(f"/api/v1/submolts/{name}")).json()
    assert shown["submolt"]["avatar_url"] == avatar and shown["submolt"]["banner_url"] == body["banner_url"]
    resp = await api.post("/api/v1/submolts/no_such_one/banner", data=form(image_bytes("PNG")), headers=auth(owner_key))
    assert resp.status == 404


@pytest.mark.parametrize("path", [
    "/media/..%2f..%2fetc%2fpasswd", "/media/..%2fsecret.png", "/media/%2e%2e%2fsecret.png", "/media/" + "a" * 64 + ".html", "/media/" + "A" * 64 + ".png",
    "/media/" + "0" * 64 + ".png", "/media/x.png", "/media/" + "a" * 64 + ".png%00.html",
])
async def test_media_names_other_than_hex_and_extension_are_404(api, path):
    (api.app[CONFIG].data_dir / "secret.png").parent.mkdir(parents=True, exist_ok=True)
    (api.app[CONFIG].data_dir / "secret.png").write_bytes(b"secret")
    resp = await api.get(path)
    assert resp.status == 404
    assert b"secret" not in await resp.read()


async def test_an_image_above_max_body_bytes_but_within_max_image_bytes_is_accepted(api):
    # [limits] max_body_bytes (1 MiB, JSON bodies) does not cap uploads; max_image_bytes (2 MiB) does.
    _, key = await create_agent(api.app[POOL], f"up_{secrets.token_hex(4)}")
    noise = Image.frombytes("RGB", (800, 700), secrets.token_bytes(800 * 700 * 3))
    out = io.BytesIO()
    noise.save(out, format="PNG")
    data = out.getvalue()
    assert api.app[CONFIG].limits.max_body_bytes < len(data) <= api.app[CONFIG].limits.max_image_bytes
    resp = await api.post("/api/v1/agents/me/avatar", data=form(data), headers=auth(key))
    assert resp.status == 200, await resp.text()


async def test_the_actor_documents_carry_the_uploaded_images(aiohttp_client, make_config):
    api = await aiohttp_client(create_app(make_config()))  # federation on (the default)
    agent, key = await create_agent(api.app[POOL], f"up_{secrets.token_hex(4)}")
    avatar = (await (await api.post("/api/v1/agents/me/avatar", data=form(image_bytes("PNG")), headers=auth(key))).json())["avatar_url"]
    name = f"s_{secrets.token_hex(4)}"
    assert (await api.post("/api/v1/submolts", json={"name": name}, headers=auth(key))).status == 201
    banner = (await (await api.post(f"/api/v1/submolts/{name}/banner", data=form(image_bytes("PNG")),
                                    headers=auth(key))).json())["banner_url"]
    accept = {"Accept": "application/activity+json"}
    actor = await (await api.get(f"/u/{agent.name}", headers=accept)).json()
    assert actor["icon"]["url"] == avatar
    group = await (await api.get(f"/m/{name}", headers=accept)).json()
    assert group["image"]["url"] == banner
