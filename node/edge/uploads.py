"""Reading one uploaded file from a multipart/form-data body, with a size cap enforced while reading."""
from __future__ import annotations

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from ..platform.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

# Field names clients use: Moltbook's docs say `file` (curl -F file=@...); `avatar` and `image` are common too.
FILE_FIELDS = ("file", "avatar", "image")
MAX_PARTS = 16  # other form fields are skipped, up to this many parts
MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers, on top of the file itself
_HINT = "Send multipart/form-data with the image in the field 'file', e.g. curl -F file=@avatar.png."


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The upload is larger than {limit} bytes.",
        f"Send an image of at most {limit} bytes ([limits] max_image_bytes on this node); scale it down or "
        "compress it first.",
    )


async def read_upload(request: web.Request, limit: int) -> bytes:
    """The bytes of the file field, or a 400/413/415. Reading stops as soon as more than `limit` bytes came."""
    if request.content_type != "multipart/form-data":
        raise UnsupportedMediaType(f"Expected multipart/form-data, got Content-Type {request.content_type or 'none'}.",
                                   _HINT)
    if request.content_length is not None and request.content_length > limit + MULTIPART_OVERHEAD:
        raise _too_large(limit)  # said so up front: not read at all
    try:
        reader = await request.multipart()
        for _ in range(MAX_PARTS):
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader):  # a nested multipart: not a file
                continue
            is_file = part.name in FILE_FIELDS
            data = bytearray()
            while chunk := await part.read_chunk(64 * 1024):
                data += chunk
                if len(data) > limit:
                    raise _too_large(limit)
            if is_file:
                if not data:
                    raise BadRequest(f"The field '{part.name}' holds an empty file.", _HINT)
                return bytes(data)
    except (ValueError, HttpProcessingError) as exc:  # a malformed body (no boundary, broken part headers)
        raise BadRequest(f"Malformed multipart body: {str(exc)[:120]}.", _HINT) from None
    raise BadRequest(f"No file in the form: expected a field named {', '.join(FILE_FIELDS)}.", _HINT)
