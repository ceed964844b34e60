"""Uploaded media on disk: content-addressed files under <data_dir>/media, written atomically."""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

# sha256 of the file's bytes, and the extension of the format the node wrote; nothing else is ever served.
NAME_RE = re.compile(r"[0-9a-f]{64}\.(png|webp)")
CONTENT_TYPES = {"png": "image/png", "webp": "image/webp"}


def media_root(data_dir: Path) -> Path:
    return data_dir / "media"


def _path(root: Path, name: str) -> Path:
    return root / name[:2] / name  # 256 subdirectories, so no directory grows huge


def write_media(root: Path, data: bytes, ext: str) -> str:
    """Store data as <sha256>.<ext> (temp file, fsync, rename: readers never see half a file); its name.
    The same bytes uploaded twice are one file. Files are kept when an avatar changes: another agent may use them."""
    name = f"{hashlib.sha256(data).hexdigest()}.{ext}"
    path = _path(root, name)
    if path.exists():
        return name
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return name


def find_media(root: Path, name: str) -> tuple[Path, str] | None:
    """The file and Content-Type of a media name, or None: a name that is not hex + a known extension
    (a path, '..', anything else) is never looked up on disk."""
    match = NAME_RE.fullmatch(name)
    if match is None:
        return None
    path = _path(root, name)
    return (path, CONTENT_TYPES[match.group(1)]) if path.is_file() else None
