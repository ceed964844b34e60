-- Token buckets shared by every process of a node that has no Redis (node/edge/ratelimit/pg_buckets.py).
-- UNLOGGED: no WAL for a row written on every hit; a crash empties the table, and a missing row is a full
-- bucket (the lenient side, as when Redis restarts). Times are unix seconds on the database's clock, so
-- that every process agrees on "now". full_at is when the bucket is full again: the sweep deletes those rows.
-- No index besides the key's: every hit updates full_at, and an index on it would stop HOT updates.
CREATE UNLOGGED TABLE rate_buckets (
    key text PRIMARY KEY,
    tokens double precision NOT NULL,
    updated double precision NOT NULL,
    full_at double precision NOT NULL
);

-- Refill the bucket (p_capacity tokens per p_per_seconds), give back p_back tokens (an expired lease), then
-- take: at least p_cost and up to p_want whole tokens (a lease), only p_cost while fewer than two chunks
-- (p_chunk) are left, so the last tokens are not parked in one process; nothing when fewer than p_cost are
-- left. A negative p_cost (= p_want) is a refund; nothing ever lifts a bucket above its capacity. One round
-- trip: the row is locked from the read to the write, so concurrent takes of one key queue up. p_now: the
-- clock to use (tests), NULL for the database's. Returns what was granted, what is left, and "now".
CREATE FUNCTION rate_bucket_take(
    p_key text, p_capacity integer, p_per_seconds double precision, p_cost integer, p_want integer,
    p_back integer, p_chunk integer, p_now double precision
) RETURNS TABLE (granted integer, remaining double precision, clock double precision)
LANGUAGE plpgsql AS $$
DECLARE
    v_now double precision := coalesce(p_now, extract(epoch FROM clock_timestamp())::double precision);
    v_rate double precision := p_capacity / p_per_seconds;
    v_tokens double precision;
    v_updated double precision;
    v_granted integer := 0;
    v_found boolean;
    v_inserted integer;
BEGIN
    LOOP
        SELECT b.tokens, b.updated INTO v_tokens, v_updated FROM rate_buckets b WHERE b.key = p_key FOR UPDATE;
        v_found := FOUND;
        IF NOT v_found THEN
            v_tokens := p_capacity;
            v_updated := v_now;
        END IF;
        IF v_now > v_updated THEN
            v_tokens := least(p_capacity::double precision, v_tokens + (v_now - v_updated) * v_rate);
        END IF;
        v_tokens := least(p_capacity::double precision, v_tokens + p_back);
        v_granted := 0;
        IF v_tokens >= p_cost THEN
            v_granted := greatest(p_cost, least(p_want, floor(v_tokens)::integer));
            IF v_tokens < 2 * p_chunk THEN
                v_granted := p_cost;
            END IF;
            v_tokens := least(p_capacity::double precision, v_tokens - v_granted);
        END IF;
        IF v_found THEN
            UPDATE rate_buckets b SET tokens = v_tokens, updated = v_now,
                full_at = v_now + (p_capacity - v_tokens) / v_rate
            WHERE b.key = p_key;
            EXIT;
        END IF;
        INSERT INTO rate_buckets AS b (key, tokens, updated, full_at)
        VALUES (p_key, v_tokens, v_now, v_now + (p_capacity - v_tokens) / v_rate)
        ON CONFLICT (key) DO NOTHING;
        GET DIAGNOSTICS v_inserted = ROW_COUNT;
        EXIT WHEN v_inserted > 0;
        -- Another process created the row meanwhile: take from its row instead.
    END LOOP;
    RETURN QUERY SELECT v_granted, v_tokens, v_now;
END
$$;
