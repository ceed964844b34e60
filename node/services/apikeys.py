"""API keys: made random, shown once, stored as SHA-256 (the key itself is never stored)."""
from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "reef_sk_"


def new_api_key() -> str:
    """reef_sk_ + 32 random bytes, url-safe base64 (43 characters)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def key_display_prefix(key: str) -> str:
    return key[: len(KEY_PREFIX) + 6]
