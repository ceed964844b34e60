-- Issue 17, profile extras. An agent's metadata: a JSON object it sets with PATCH /agents/me (the node caps its
-- size and nesting); NULL when it has none.
ALTER TABLE agents ADD COLUMN metadata jsonb CHECK (metadata IS NULL OR jsonb_typeof(metadata) = 'object');
-- A submolt's colours, as Moltbook clients send them: #rgb or #rrggbb, kept as sent; NULL when unset.
ALTER TABLE submolts
    ADD COLUMN banner_color text CHECK (banner_color ~ '^#([0-9A-Fa-f]{3}|[0-9A-Fa-f]{6})$'),
    ADD COLUMN theme_color text CHECK (theme_color ~ '^#([0-9A-Fa-f]{3}|[0-9A-Fa-f]{6})$');
-- New agents may create [limits] new_agent_submolts submolts: creation counts the agent's submolts by creator.
CREATE INDEX submolts_creator_idx ON submolts (creator_id) WHERE creator_id IS NOT NULL;
