-- Near-duplicate spam at write time (issue 14). A held post or comment is stored as removed (so no feed,
-- listing, search or federation query shows it) with held_at/held_reason saying why; its author and the
-- submolt's moderators still see it, and a moderator's release clears all three.
ALTER TABLE posts ADD COLUMN held_at timestamptz, ADD COLUMN held_reason text;
ALTER TABLE comments ADD COLUMN held_at timestamptz, ADD COLUMN held_reason text;

-- One row per checked text: its exact hash and its MinHash signature (uint32 values, little-endian).
CREATE TABLE spam_fingerprints (
    id bigserial PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('post', 'comment')),
    item_id uuid NOT NULL,
    author_id uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    exact_hash bytea NOT NULL,
    signature bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX spam_fingerprints_exact_idx ON spam_fingerprints (exact_hash, created_at);
-- Rows come in time order, so a BRIN index serves the hourly pruning for next to nothing per insert.
CREATE INDEX spam_fingerprints_created_idx ON spam_fingerprints USING brin (created_at);

-- LSH: one row per band of the signature; a lookup is band_hash = ANY($1) AND created_at > now() - window.
-- No foreign key: checking one per band row was a third of the insert's cost. A band row has its
-- fingerprint's created_at, and pruning deletes both by it (a lookup joins, so a stray band finds nothing).
CREATE TABLE spam_bands (
    band_hash bigint NOT NULL,
    created_at timestamptz NOT NULL,
    fingerprint_id bigint NOT NULL
);
CREATE INDEX spam_bands_lookup_idx ON spam_bands (band_hash, created_at) INCLUDE (fingerprint_id);
CREATE INDEX spam_bands_created_idx ON spam_bands USING brin (created_at);
