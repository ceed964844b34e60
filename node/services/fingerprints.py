"""Text fingerprints for near-duplicate detection: a normal form, its exact hash, a MinHash signature, LSH bands.

Shingles are runs of `shingle_size` characters of the normal form (characters, not words: a short
promotional text with one word changed still shares most of its shingles). Each shingle is hashed by a
polynomial over its code points and a 64-bit mixer; the i-th MinHash value is the minimum over the
shingles of the top 32 bits of (a_i * x + b_i) mod 2^64 (multiply-shift hashing), all in numpy, so a
signature costs one (permutations x shingles) matrix, not a Python loop. The constants come from a fixed
seed: signatures agree across processes and restarts. Changing shingle_size, permutations or bands makes
older fingerprints unmatchable until they leave the window.
"""
from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass

import numpy as np

MAX_CHARS = 4000  # of the normal form that is shingled: longer texts are compared on their beginning
_SEED = 0x5EEF_0014
_URL = re.compile(r"(?:https?://|www\.)(?:www\.)?([^\s/?#:]+)\S*")
_DIGITS = re.compile(r"\d+")
_PUNCT = re.compile(r"[^\w\s]+|_")
_SPACE = re.compile(r"\s+")
_POLY = np.uint64(0x100000001B3)  # FNV prime: the shingle polynomial's base
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


@dataclass(frozen=True, slots=True)
class Fingerprint:
    exact_hash: bytes  # sha256 of the normal form
    signature: np.ndarray  # uint32, one value per permutation
    bands: tuple[int, ...]  # signed 64-bit hashes, one per LSH band

    @property
    def signature_bytes(self) -> bytes:
        return self.signature.astype("<u4").tobytes()


def normalise(text: str) -> str:
    """Case-folded; a URL becomes its host; numbers become 0; punctuation goes; whitespace collapses. So
    copies that differ only in tracking links, counters or spacing have one normal form."""
    text = _URL.sub(lambda m: f" {m.group(1)} ", text.casefold())
    text = _DIGITS.sub("0", text)
    text = _PUNCT.sub(" ", text)
    return _SPACE.sub(" ", text).strip()


@functools.lru_cache(maxsize=8)
def _permutations(count: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(_SEED)
    a = rng.integers(1, 2**63, size=count, dtype=np.uint64) * np.uint64(2) + np.uint64(1)  # odd multipliers
    b = rng.integers(0, 2**63, size=count, dtype=np.uint64)
    return a.reshape(-1, 1), b.reshape(-1, 1)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit moves every output bit."""
    x = x ^ (x >> np.uint64(30))
    x = x * _MIX1
    x = x ^ (x >> np.uint64(27))
    x = x * _MIX2
    return x ^ (x >> np.uint64(31))


def shingle_hashes(normal: str, size: int) -> np.ndarray:
    """The distinct 64-bit hashes of the normal form's `size`-character shingles."""
    points = np.frombuffer(normal[:MAX_CHARS].encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    n = len(points) - size + 1
    if n <= 0:
        return _mix(np.array([len(points)], dtype=np.uint64))
    acc = np.zeros(n, dtype=np.uint64)
    for j in range(size):
        acc = acc * _POLY + points[j : j + n]
    return np.unique(_mix(acc))


def signature(hashes: np.ndarray, permutations: int) -> np.ndarray:
    a, b = _permutations(permutations)
    values = np.multiply(a, hashes.reshape(1, -1))  # uint64 arithmetic wraps: mod 2^64
    values += b
    # The top bits of the minimum are the minimum of the top bits: one shift of 64 values, not of the matrix.
    return (values.min(axis=1) >> np.uint64(32)).astype(np.uint32)


def band_hashes(sig: np.ndarray, bands: int) -> tuple[int, ...]:
    """One hash per band of rows; the band's index is mixed in, so equal rows in different bands differ."""
    rows = sig.reshape(bands, -1).astype(np.uint64)
    acc = np.arange(bands, dtype=np.uint64) * _MIX2
    for j in range(rows.shape[1]):
        acc = _mix(acc ^ rows[:, j])
    return tuple(int(v) for v in acc.view(np.int64))


def normal_form(text: str) -> str:
    """normalise() of the part of the text that is fingerprinted (the rest is not shingled: spare the regexes)."""
    return normalise(text[: 2 * MAX_CHARS])


def fingerprint(text: str, *, shingle_size: int, permutations: int, bands: int, normal: str | None = None) -> Fingerprint:
    """The text's fingerprint; `normal`: its normal_form(), when the caller has it already."""
    normal = normal_form(text) if normal is None else normal
    sig = signature(shingle_hashes(normal, shingle_size), permutations)
    return Fingerprint(hashlib.sha256(normal.encode()).digest(), sig, band_hashes(sig, bands))


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """The estimated Jaccard similarity of two signatures (the share of equal MinHash values)."""
    if a.shape != b.shape:
        return 0.0  # made with other settings
    return float(np.count_nonzero(a == b)) / len(a)


def read_signature(raw: bytes) -> np.ndarray:
    return np.frombuffer(raw, dtype="<u4").astype(np.uint32)
