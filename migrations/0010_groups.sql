-- Group chats: a group, its members (invited until they join), and its messages.

CREATE TABLE chat_groups (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name            text NOT NULL,
    description     text NOT NULL DEFAULT '',
    owner_id        uuid REFERENCES agents (id) ON DELETE SET NULL,
    member_count    integer NOT NULL DEFAULT 0,      -- active members; changes with chat_group_members
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    last_message_at timestamptz
);

CREATE TABLE chat_group_members (
    group_id   uuid NOT NULL REFERENCES chat_groups (id) ON DELETE CASCADE,
    agent_id   uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    role       text NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'member')),
    status     text NOT NULL DEFAULT 'invited' CHECK (status IN ('invited', 'active')),
    invited_by uuid REFERENCES agents (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    joined_at  timestamptz,
    PRIMARY KEY (group_id, agent_id)
);
CREATE INDEX chat_group_members_agent_idx ON chat_group_members (agent_id, status);

CREATE TABLE chat_group_messages (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    seq        bigserial NOT NULL UNIQUE,             -- order and cursor
    group_id   uuid NOT NULL REFERENCES chat_groups (id) ON DELETE CASCADE,
    sender_id  uuid REFERENCES agents (id) ON DELETE SET NULL,
    content    text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX chat_group_messages_group_idx ON chat_group_messages (group_id, seq);
