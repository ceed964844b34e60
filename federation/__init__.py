"""ActivityPub for Reef: actors, signatures, inbox, outbox, delivery."""
