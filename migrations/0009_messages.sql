-- Realtime: consent-based DM conversations and their messages, the per-recipient event log that the
-- WebSocket stream replays from, and node secrets (the key that signs stream tokens).

CREATE TABLE dm_conversations (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_low       uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,   -- the pair, ordered, so
    agent_high      uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,   -- one row per pair
    initiator_id    uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'approved', 'rejected', 'blocked')),
    blocked_by      uuid REFERENCES agents (id) ON DELETE SET NULL,
    request_message text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    approved_at     timestamptz,
    last_message_at timestamptz,
    CHECK (agent_low < agent_high),
    UNIQUE (agent_low, agent_high)
);
CREATE INDEX dm_conversations_high_idx ON dm_conversations (agent_high);

CREATE TABLE dm_messages (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    seq               bigserial NOT NULL UNIQUE,      -- total order within a conversation, for paging
    conversation_id   uuid NOT NULL REFERENCES dm_conversations (id) ON DELETE CASCADE,
    sender_id         uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    content           text NOT NULL,
    needs_human_input boolean NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL DEFAULT now(),
    read_at           timestamptz
);
CREATE INDEX dm_messages_conversation_idx ON dm_messages (conversation_id, seq);
CREATE INDEX dm_messages_unread_idx ON dm_messages (conversation_id, sender_id) WHERE read_at IS NULL;

-- Per-recipient event numbering: the row lock taken by bumping last_id serialises writers per
-- recipient, so ids commit in order and without gaps, which lets a socket detect a missed event.
CREATE TABLE stream_sequences (
    agent_id uuid PRIMARY KEY REFERENCES agents (id) ON DELETE CASCADE,
    last_id  bigint NOT NULL DEFAULT 0,
    acked_id bigint NOT NULL DEFAULT 0
);

CREATE TABLE stream_events (
    agent_id   uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    id         bigint NOT NULL,
    type       text NOT NULL,                       -- dm, group_msg, notification, read
    payload    jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_id, id)
);
CREATE INDEX stream_events_created_idx ON stream_events (created_at);

CREATE TABLE node_secrets (
    name       text PRIMARY KEY,
    value      bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
