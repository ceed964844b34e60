-- Comment threads: a root id so that a page's whole subtrees load in one query, and stored best and
-- controversial ranks so that every comment sort is served (and cursor-paged) by an index.
--
-- best: the lower bound of the Wilson score interval (95 %, z = 1.96) for the share of upvotes among
--   votes, as Reddit's "best": a comment with 10 up / 0 down ranks above one with 1 up / 0 down.
-- controversial: Lemmy's r.controversy_rank, (up + down) ^ (min(up, down) / max(up, down)), 0 when
--   either side is 0: many votes, evenly split, rank highest.
-- Both depend only on the vote counts, so the trigger below recomputes them in the vote's own UPDATE.

ALTER TABLE comments
    ADD COLUMN root_id          uuid,   -- the top-level comment of this comment's thread (itself when top-level)
    ADD COLUMN best_rank        double precision NOT NULL DEFAULT 0,
    ADD COLUMN controversy_rank double precision NOT NULL DEFAULT 0;

CREATE FUNCTION reef_wilson_lower_bound(upvotes integer, downvotes integer) RETURNS double precision
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    -- (p + z²/2n - z * sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n) with p = up/n, z = 1.96, written with
    -- sqrt(p(1-p)/n + z²/4n²) = sqrt(up*down/n + z²/4) / n.
    RETURN CASE
        WHEN upvotes + downvotes <= 0 THEN 0
        ELSE (upvotes::double precision / (upvotes + downvotes)
              + 1.9208 / (upvotes + downvotes)
              - 1.96 * sqrt(upvotes::double precision * downvotes / (upvotes + downvotes) + 0.9604)
                / (upvotes + downvotes))
             / (1 + 3.8416 / (upvotes + downvotes))
    END;

CREATE FUNCTION reef_controversy_rank(upvotes integer, downvotes integer) RETURNS double precision
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE
        WHEN upvotes <= 0 OR downvotes <= 0 THEN 0
        ELSE power((upvotes + downvotes)::double precision,
                   least(upvotes, downvotes)::double precision / greatest(upvotes, downvotes))
    END;

-- Backfill (comments written before this migration).
WITH RECURSIVE thread AS (
    SELECT id, id AS root FROM comments WHERE parent_id IS NULL
    UNION ALL
    SELECT c.id, thread.root FROM comments c JOIN thread ON c.parent_id = thread.id
)
UPDATE comments SET root_id = thread.root FROM thread WHERE comments.id = thread.id;
UPDATE comments SET best_rank = reef_wilson_lower_bound(upvotes, downvotes),
                    controversy_rank = reef_controversy_rank(upvotes, downvotes);
ALTER TABLE comments ALTER COLUMN root_id SET NOT NULL;

CREATE FUNCTION reef_comments_before_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    parent_post uuid;
    parent_root uuid;
BEGIN
    IF NEW.parent_id IS NULL THEN
        NEW.root_id := NEW.id;
    ELSE
        SELECT post_id, root_id INTO parent_post, parent_root FROM comments WHERE id = NEW.parent_id;
        IF parent_post IS DISTINCT FROM NEW.post_id THEN
            RAISE EXCEPTION 'parent comment % is not on post %', NEW.parent_id, NEW.post_id
                USING ERRCODE = 'foreign_key_violation';
        END IF;
        NEW.root_id := parent_root;
    END IF;
    NEW.best_rank := reef_wilson_lower_bound(NEW.upvotes, NEW.downvotes);
    NEW.controversy_rank := reef_controversy_rank(NEW.upvotes, NEW.downvotes);
    RETURN NEW;
END $$;

CREATE FUNCTION reef_comments_set_ranks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.best_rank := reef_wilson_lower_bound(NEW.upvotes, NEW.downvotes);
    NEW.controversy_rank := reef_controversy_rank(NEW.upvotes, NEW.downvotes);
    RETURN NEW;
END $$;

CREATE TRIGGER comments_before_insert BEFORE INSERT ON comments
    FOR EACH ROW EXECUTE FUNCTION reef_comments_before_insert();
CREATE TRIGGER comments_set_ranks_update BEFORE UPDATE OF upvotes, downvotes ON comments
    FOR EACH ROW EXECUTE FUNCTION reef_comments_set_ranks();

-- Subtrees of a page's top-level comments.
CREATE INDEX comments_root_idx ON comments (root_id);
-- Keyset paging of a post's top-level comments, one index per sort (new and old share one).
CREATE INDEX comments_top_best_idx ON comments (post_id, best_rank, created_at, id) WHERE parent_id IS NULL;
CREATE INDEX comments_top_score_idx ON comments (post_id, score, created_at, id) WHERE parent_id IS NULL;
CREATE INDEX comments_top_controversy_idx ON comments (post_id, controversy_rank, created_at, id) WHERE parent_id IS NULL;
CREATE INDEX comments_top_new_idx ON comments (post_id, created_at, id) WHERE parent_id IS NULL;
