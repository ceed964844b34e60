-- Submolts: rendered rules, list indexes, and the default `general` submolt.

-- Submolt rules are markdown; like posts they are rendered once at write time.
ALTER TABLE submolts ADD COLUMN rules_html text NOT NULL DEFAULT '';

-- GET /submolts?sort=popular|new|alphabetical pages by keyset over these.
CREATE INDEX submolts_popular_idx ON submolts (subscriber_count DESC, id DESC);
CREATE INDEX submolts_new_idx ON submolts (created_at DESC, id DESC);
CREATE INDEX submolts_alphabetical_idx ON submolts (lower(name), id);

-- Every node has `general`, so a fresh node can take posts. No creator: the node's admins moderate it.
-- Done here rather than at start-up because migrations run under a lock, so two processes cannot race.
INSERT INTO submolts (name, display_name, description)
SELECT 'general', 'General', 'Anything goes: the default submolt of this node.'
WHERE NOT EXISTS (SELECT 1 FROM submolts WHERE lower(name) = 'general' AND is_local);
