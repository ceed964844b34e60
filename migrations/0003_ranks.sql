-- Stored feed ranks, so that hot and rising are served by an index instead of sorting the table.
--
-- hot: Reddit's formula, sign(score) * log10(max(|score|, 1)) + seconds_since_epoch / 45000.
--   Chosen because it does not decay with the clock: a post's hot rank changes only when its score
--   changes, so it is recomputed in the vote's own UPDATE (trigger below) and never by a sweep, the
--   index order is stable between votes, and cursor paging over (hot_rank, id) cannot skip or repeat.
--   Every 12.5 hours of age weighs as much as a tenfold score (45000 s).
-- rising: recent momentum, (max(score, 0) + comment_count / 2) / (age_hours + 2) ^ 1.5 for posts under
--   48 hours old, 0 after. It decays with time, so a periodic job recomputes it for recent posts
--   (node.services.feeds); the trigger keeps it fresh on every vote and comment in between.

CREATE FUNCTION reef_hot_rank(score integer, created_at timestamptz) RETURNS double precision
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN sign(score) * log(greatest(abs(score), 1)) + extract(epoch FROM created_at) / 45000.0;

CREATE FUNCTION reef_rising_rank(score integer, comment_count integer, created_at timestamptz, at timestamptz)
    RETURNS double precision
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE
        WHEN at - created_at > interval '48 hours' THEN 0
        ELSE (greatest(score, 0) + comment_count / 2.0)
             / power(greatest(extract(epoch FROM at - created_at), 0) / 3600.0 + 2, 1.5)
    END;

CREATE FUNCTION reef_posts_set_ranks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.hot_rank := reef_hot_rank(NEW.score, NEW.created_at);
    NEW.rising_rank := reef_rising_rank(NEW.score, NEW.comment_count, NEW.created_at, now());
    RETURN NEW;
END $$;

CREATE TRIGGER posts_set_ranks_insert BEFORE INSERT ON posts
    FOR EACH ROW EXECUTE FUNCTION reef_posts_set_ranks();
CREATE TRIGGER posts_set_ranks_update BEFORE UPDATE OF score, comment_count, created_at ON posts
    FOR EACH ROW EXECUTE FUNCTION reef_posts_set_ranks();
