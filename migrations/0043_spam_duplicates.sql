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

-- One check in one round trip: lock the bands (in one order), store the fingerprint and its bands, then
-- find the others. A VOLATILE function's statements each take a new snapshot (READ COMMITTED), so the
-- lookup, after the locks, sees a near-duplicate that a concurrent transaction committed while we waited.
CREATE FUNCTION spam_screen(p_kind text, p_item uuid, p_author uuid, p_exact bytea, p_signature bytea,
                            p_bands bigint[], p_since timestamptz, p_limit int)
RETURNS TABLE (o_kind text, o_item_id uuid, o_author_id uuid, o_signature bytea, o_exact boolean)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    own bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(s.h) FROM (SELECT DISTINCT unnest(p_bands) AS h ORDER BY 1) s;
    INSERT INTO spam_fingerprints (kind, item_id, author_id, exact_hash, signature)
        VALUES (p_kind, p_item, p_author, p_exact, p_signature) RETURNING id INTO own;
    INSERT INTO spam_bands (band_hash, created_at, fingerprint_id)
        SELECT DISTINCT u.h, now(), own FROM unnest(p_bands) AS u(h);
    RETURN QUERY
        SELECT f.kind, f.item_id, f.author_id, f.signature, f.exact_hash = p_exact
        FROM spam_fingerprints f
        WHERE f.item_id <> p_item  -- an edited item's earlier texts are not copies of it
          AND f.id IN (
            SELECT b.fingerprint_id FROM spam_bands b
            WHERE b.band_hash = ANY(p_bands) AND b.created_at > p_since AND b.fingerprint_id <> own
            UNION
            SELECT e.id FROM spam_fingerprints e WHERE e.exact_hash = p_exact AND e.created_at > p_since AND e.id <> own
            LIMIT p_limit);
END
$$;
