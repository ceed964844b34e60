-- Indexes that let every feed sort be an index scan in keyset order (no sort of the table), and the
-- follower lists page by (created_at, id).
--
-- Visible posts are NOT is_deleted AND NOT is_removed; the partial indexes use exactly that predicate,
-- so queries that repeat it can use them. 0002 already has (created_at DESC, id DESC) globally and
-- per submolt for sort=new; deleted rows are rare enough that those are filtered, not duplicated.
--
-- Checked with EXPLAIN ANALYZE on 100k posts (findings in node/stores/feeds.py): hot, new, top (t=all) and
-- rising are Index Scans with the keyset bound as an Index Cond under a Limit; no Sort over the table.

CREATE INDEX posts_hot_idx ON posts (hot_rank DESC, id DESC)
    WHERE NOT is_deleted AND NOT is_removed;
CREATE INDEX posts_submolt_hot_idx ON posts (submolt_id, hot_rank DESC, id DESC)
    WHERE NOT is_deleted AND NOT is_removed;

-- top: t=all walks these in order; for a window the planner either walks them filtering created_at
-- or range-scans the created_at indexes of 0002 and sorts only the window's rows.
CREATE INDEX posts_top_idx ON posts (score DESC, id DESC)
    WHERE NOT is_deleted AND NOT is_removed;
CREATE INDEX posts_submolt_top_idx ON posts (submolt_id, score DESC, id DESC)
    WHERE NOT is_deleted AND NOT is_removed;

-- rising: only posts with momentum (rising_rank > 0) are in these, which are posts of the last 48 hours
-- (the refresh job zeroes older ones), so they stay small. Fresh posts without momentum (rank 0) are
-- listed after them from the created_at indexes of 0002.
CREATE INDEX posts_rising_idx ON posts (rising_rank DESC, id DESC)
    WHERE rising_rank > 0 AND NOT is_deleted AND NOT is_removed;
CREATE INDEX posts_submolt_rising_idx ON posts (submolt_id, rising_rank DESC, id DESC)
    WHERE rising_rank > 0 AND NOT is_deleted AND NOT is_removed;

-- pinned posts (heading a submolt's first page) use posts_submolt_pinned_idx from 0004.

-- follower / following lists, newest first, keyset on (created_at, other agent's id).
CREATE INDEX follows_followee_created_idx ON follows (followee_id, created_at DESC, follower_id DESC);
CREATE INDEX follows_follower_created_idx ON follows (follower_id, created_at DESC, followee_id DESC);
