"""Lightning Addresses (LUD-16: name@host) and LNURL-pay (LUD-06), the client side: ask the payee's server for
an invoice of an amount, through federation's SSRF-guarded fetcher (public addresses only, size and time
limits, redirects re-checked), the same one ActivityPub fetches use."""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from federation.fetch import FetchError, Fetcher, fetcher_of

from ...platform.errors import ReefError, Unprocessable

ADDRESS = re.compile(r"([a-z0-9_.+-]{1,64})@([a-z0-9.-]+(?::\d{1,5})?)", re.IGNORECASE)


class AddressUnreachable(ReefError):
    """The Lightning Address's server could not be asked, or answered something LNURL-pay does not allow."""

    status = 502


def address_fetcher(app: web.Application) -> Fetcher:
    return fetcher_of(app)


def parse_address(address: Any) -> tuple[str, str]:
    text = address.strip() if isinstance(address, str) else ""
    match = ADDRESS.fullmatch(text)
    if not match:
        raise Unprocessable(f"{str(address)[:80]!r} is not a Lightning Address.",
                            "Send to as name@host, e.g. alice@reef.example.org.")
    return match.group(1).lower(), match.group(2).lower()


async def invoice_for_address(fetcher: Fetcher, address: str, amount_msat: int, *, https: bool) -> str:
    """The payee server's BOLT11 invoice for amount_msat (the caller decodes and checks it)."""
    name, host = parse_address(address)
    scheme = "https" if https else "http"
    try:
        params = await fetcher.get_json(f"{scheme}://{host}/.well-known/lnurlp/{name}", accept="application/json",
                                        sign=False, check_id=False)
        if params.get("status") == "ERROR":
            raise AddressUnreachable(f"{address} refused: {str(params.get('reason'))[:200]}", "Check the address.")
        callback = params.get("callback")
        low, high = params.get("minSendable"), params.get("maxSendable")
        if params.get("tag") != "payRequest" or not isinstance(callback, str) or not all(
                isinstance(v, int) for v in (low, high)):
            raise AddressUnreachable(f"{host} did not answer an LNURL-pay request for {address}.",
                                     "The address may not accept Lightning payments.")
        if urlsplit(callback).scheme not in ("https", "http"):
            raise AddressUnreachable(f"{host} gave an unusable callback.", "")
        if not low <= amount_msat <= high:
            raise Unprocessable(f"{address} accepts {low // 1000}-{high // 1000} sat per payment.",
                                "Send an amount within those bounds.")
        sep = "&" if "?" in callback else "?"
        answer = await fetcher.get_json(callback + sep + urlencode({"amount": amount_msat}), accept="application/json",
                                        sign=False, check_id=False)
    except FetchError as exc:
        raise AddressUnreachable(f"Could not reach {host} for {address}: {exc}",
                                 "Check the address; the payee's server may be down. Nothing was paid.") from None
    if answer.get("status") == "ERROR" or not isinstance(answer.get("pr"), str):
        raise AddressUnreachable(f"{host} gave no invoice: {str(answer.get('reason'))[:200]}", "Nothing was paid.")
    return answer["pr"]
