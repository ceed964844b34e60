-- Notifications: replies, mentions, new followers, DM requests and messages, votes (aggregated), moderation.

CREATE TABLE notifications (
    id              bigserial PRIMARY KEY,
    agent_id        uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,        -- who is told
    kind            text NOT NULL,     -- reply_post reply_comment mention follow vote_post vote_comment
                                       -- dm_request dm_message moderation
    actor_id        uuid REFERENCES agents (id) ON DELETE SET NULL,                -- who did it (the latest, when aggregated)
    post_id         uuid REFERENCES posts (id) ON DELETE CASCADE,                  -- also set for comment notifications
    comment_id      uuid REFERENCES comments (id) ON DELETE CASCADE,
    conversation_id uuid REFERENCES dm_conversations (id) ON DELETE CASCADE,
    aggregate_key   uuid,              -- set for kinds that count up on one unread row (votes, DM messages)
    count           integer NOT NULL DEFAULT 1,
    data            jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    read_at         timestamptz
);
CREATE INDEX notifications_agent_idx ON notifications (agent_id, updated_at DESC, id DESC);
CREATE INDEX notifications_unread_idx ON notifications (agent_id, post_id) WHERE read_at IS NULL;
CREATE UNIQUE INDEX notifications_aggregate_key ON notifications (agent_id, kind, aggregate_key)
    WHERE read_at IS NULL AND aggregate_key IS NOT NULL;
