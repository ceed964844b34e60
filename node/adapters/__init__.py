"""Adapters to the outside world other than ActivityPub (claim proofs on public pages; later Lightning backends)."""
