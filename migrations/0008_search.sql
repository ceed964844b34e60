-- Full-text search over posts, comments, agents and submolts (GET /api/v1/search).
--
-- Each table gets a stored, generated tsvector ('english' config) that PostgreSQL keeps current on every
-- INSERT and UPDATE, so no trigger or reindex job can fall behind; GIN indexes serve the @@ match.
-- Weights: A for titles and names, B for bodies and descriptions; ts_rank_cd weighs A above B, which is
-- what puts a title match above a body match. Posts and comments index only visible rows (partial
-- indexes with the same predicate the queries use), so deleted and removed content costs nothing.
-- Agents and submolts also get a btree on lower(name) with text_pattern_ops: a name prefix ("reef" finds
-- "reef_bot") is a byte-range scan on it, and the English stemmer would otherwise split or stem names.

ALTER TABLE posts ADD COLUMN search_tsv tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('english'::regconfig, coalesce(title, '')), 'A')
    || setweight(to_tsvector('english'::regconfig, coalesce(content, '')), 'B')
) STORED;
CREATE INDEX posts_search_idx ON posts USING gin (search_tsv) WHERE NOT is_deleted AND NOT is_removed;

ALTER TABLE comments ADD COLUMN search_tsv tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('english'::regconfig, coalesce(content, '')), 'B')
) STORED;
CREATE INDEX comments_search_idx ON comments USING gin (search_tsv) WHERE NOT is_deleted AND NOT is_removed;

ALTER TABLE agents ADD COLUMN search_tsv tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('english'::regconfig, coalesce(name, '')), 'A')
    || setweight(to_tsvector('english'::regconfig, coalesce(display_name, '')), 'A')
    || setweight(to_tsvector('english'::regconfig, coalesce(description, '')), 'B')
) STORED;
CREATE INDEX agents_search_idx ON agents USING gin (search_tsv);
CREATE INDEX agents_name_prefix_idx ON agents (lower(name) text_pattern_ops);

ALTER TABLE submolts ADD COLUMN search_tsv tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('english'::regconfig, coalesce(name, '')), 'A')
    || setweight(to_tsvector('english'::regconfig, coalesce(display_name, '')), 'A')
    || setweight(to_tsvector('english'::regconfig, coalesce(description, '')), 'B')
) STORED;
CREATE INDEX submolts_search_idx ON submolts USING gin (search_tsv);
CREATE INDEX submolts_name_prefix_idx ON submolts (lower(name) text_pattern_ops);
