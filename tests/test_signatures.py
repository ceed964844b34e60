"""HTTP signatures: draft-cavage and RFC 9421 round trips, and every way a signature must fail."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from federation import rfc9421, sigcore
from federation import signatures as sig

PRIV, PUB = sigcore.generate_rsa_keypair()
OTHER_PRIV, OTHER_PUB = sigcore.generate_rsa_keypair()
URL = "http://127.0.0.1:8080/inbox"
BODY = json.dumps({"type": "Follow", "id": "http://a/1"}).encode()
KEY_ID = "http://127.0.0.1:9000/u/alice#main-key"


def _verify(method, url, headers, body, pub=PUB, window=300, now=None):
    parsed = sig.parse_signature(method, url, headers)
    sig.required_components_present(parsed, method)
    sig.check_freshness(parsed, headers, window=window, now=now)
    if body is not None:
        sigcore.verify_digest(headers, body)
    sig.verify_signature(parsed, pub)
    return parsed


def test_cavage_post_round_trip_uses_the_exact_header_set():
    headers = sig.sign_request("POST", URL, key_id=KEY_ID, private_key_pem=PRIV, body=BODY)
    assert headers["Digest"].startswith("SHA-256=")
    assert 'algorithm="rsa-sha256"' in headers["Signature"]
    assert 'headers="(request-target) host date digest content-type"' in headers["Signature"]
    parsed = _verify("POST", URL, headers, BODY)
    assert parsed.key_id == KEY_ID and parsed.scheme == "cavage"


def test_cavage_get_and_query_string_are_signed():
    url = URL + "?page=2"
    headers = sig.sign_request("GET", url, key_id=KEY_ID, private_key_pem=PRIV)
    _verify("GET", url, headers, None)
    with pytest.raises(sig.SignatureError, match="does not verify"):
        _verify("GET", URL + "?page=3", headers, None)


def test_hs2019_algorithm_name_is_accepted():
    headers = sig.sign_request("POST", URL, key_id=KEY_ID, private_key_pem=PRIV, body=BODY)
    headers["Signature"] = headers["Signature"].replace('algorithm="rsa-sha256"', 'algorithm="hs2019"')
    _verify("POST", URL, headers, BODY)


def test_lowercase_digest_name_as_bovine_sends_is_accepted():
    headers = sig.sign_request("POST", URL, key_id=KEY_ID, private_key_pem=PRIV, body=BODY)
    parsed = sig.parse_signature("POST", URL, headers)
    sigcore.verify_digest({"Digest": headers["Digest"].replace("SHA-256", "sha-256")}, BODY)
    sig.verify_signature(parsed, PUB)


def test_rfc9421_round_trip():
    headers = rfc9421.sign_request_rfc9421("POST", URL, key_id=KEY_ID, private_key_pem=PRIV, body=BODY)
    assert headers["Content-Digest"].startswith("sha-256=:")
    parsed = _verify("POST", URL, headers, BODY)
    assert parsed.scheme == "rfc9421" and parsed.key_id == KEY_ID
    with pytest.raises(sig.SignatureError, match="does not verify"):
        _verify("POST", "http://127.0.0.1:8080/other", headers, BODY)


@pytest.mark.parametrize("scheme", ["cavage", "rfc9421"])
def test_tampered_body_fails_the_digest(scheme):
    signer = sig.sign_request if scheme == "cavage" else rfc9421.sign_request_rfc9421
    headers = signer("POST", URL, key_id=KEY_ID, private_key_pem=PRIV, body=BODY)
    with pytest.raises(sig.SignatureError, match="does not match the body"):
        _verify("POST", URL, headers, BODY + b" ")


@pytest.mark.parametrize("scheme", ["cavage", "rfc9421"])
def test_wrong_key_fails(scheme):
    signer = sig.sign_request if scheme == "cavage" else rfc9421.sign_request_rfc9421
    headers = signer("POST", URL, key_id=KEY_ID, private_key_pem=OTHER_PRIV, body=BODY)
    with pytest.raises(sig.SignatureError, match="does not verify"):
        _verify("POST", URL, headers, BODY)


def test_forged_digest_with_matching_body_still_fails_signature():
    headers = sig.sign_request("POST", URL, key_id=KEY_ID, private_key_pem=PRIV, body=BODY)
    other = b'{"type":"Delete"}'
    headers["Digest"] = sig.digest_header(other)
    with pytest.raises(sig.SignatureError, match="does not verify"):
        _verify("POST", URL, headers, other)


@pytest.mark.parametrize("scheme", ["cavage", "rfc9421"])
def test_stale_and_future_dates_are_refused(scheme):
    signer = sig.sign_request if scheme == "cavage" else rfc9421.sign_request_rfc9421
    now = dt.datetime.now(dt.timezone.utc)
    old = signer("POST", URL, key_id=KEY_ID, private_key_pem=PRIV, body=BODY, now=now - dt.timedelta(hours=2))
    with pytest.raises(sig.SignatureError, match="stale"):
        _verify("POST", URL, old, BODY, window=3600)
    future = signer("POST", URL, key_id=KEY_ID, private_key_pem=PRIV, body=BODY, now=now + dt.timedelta(hours=2))
    with pytest.raises(sig.SignatureError, match="future"):
        _verify("POST", URL, future, BODY, window=3600)
    ok = signer("POST", URL, key_id=KEY_ID, private_key_pem=PRIV, body=BODY, now=now - dt.timedelta(minutes=30))
    _verify("POST", URL, ok, BODY, window=3600)


def test_unsigned_digest_on_post_is_refused():
    headers = sig.sign_request("POST", URL, key_id=KEY_ID, private_key_pem=PRIV, body=BODY)
    headers["Signature"] = headers["Signature"].replace(" digest", "")
    with pytest.raises(sig.SignatureError, match="Digest header must be signed"):
        _verify("POST", URL, headers, BODY)


@pytest.mark.parametrize(
    "header",
    ['keyId="x"', 'signature="abc"', "garbage", 'keyId="k",signature="!!notbase64!!"', 'keyId="k",algorithm="dsa",signature="AA=="'],
)
def test_malformed_signature_headers_raise_signature_error(header):
    headers = {"Signature": header, "Date": sig.http_date(), "Host": "127.0.0.1:8080"}
    with pytest.raises(sig.SignatureError):
        parsed = sig.parse_signature("POST", URL, headers)
        sig.verify_signature(parsed, PUB)


def test_missing_signature_and_missing_digest():
    with pytest.raises(sig.SignatureError, match="no Signature"):
        sig.parse_signature("POST", URL, {})
    with pytest.raises(sig.SignatureError, match="needs a Digest"):
        sigcore.verify_digest({}, BODY)


def test_private_key_parsing_is_cached():
    sig.load_private_key.cache_clear()
    sig.sign_request("GET", URL, key_id=KEY_ID, private_key_pem=PRIV)
    sig.sign_request("GET", URL, key_id=KEY_ID, private_key_pem=PRIV)
    info = sig.load_private_key.cache_info()
    assert info.hits >= 1 and info.misses == 1


def test_interop_with_the_httpsig_package_both_ways():
    """httpsig (the package the design card names) verifies what we sign, and we verify what it signs."""
    from httpsig import HeaderSigner, HeaderVerifier

    ours = sig.sign_request("POST", URL, key_id=KEY_ID, private_key_pem=PRIV, body=BODY)
    verifier = HeaderVerifier(
        headers=dict(ours), secret=PUB.encode(), method="POST", path="/inbox", sign_header="Signature",
        required_headers=["(request-target)", "host", "date", "digest"],
    )
    assert verifier.verify() is True

    theirs = {"Host": "127.0.0.1:8080", "Date": sig.http_date(), "Digest": sig.digest_header(BODY),
              "Content-Type": "application/activity+json"}
    signer = HeaderSigner(KEY_ID, PRIV.encode(), algorithm="rsa-sha256", sign_header="Signature",
                          headers=["(request-target)", "host", "date", "digest"])
    signed = signer.sign(theirs, host="127.0.0.1:8080", method="POST", path="/inbox")
    _verify("POST", URL, signed, BODY)
