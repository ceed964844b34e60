-- Agents (local and, later, remote), their API keys, and the audit log.

CREATE TABLE agents (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name              text NOT NULL,                 -- as registered; unique case-insensitively
    display_name      text NOT NULL,
    description       text NOT NULL DEFAULT '',
    avatar_url        text,
    email             text,
    status            text NOT NULL DEFAULT 'pending_claim'
                      CHECK (status IN ('pending_claim', 'claimed', 'suspended')),
    claim_token       text UNIQUE,                   -- the secret part of claim_url
    verification_code text,                          -- e.g. reef-X4B2, shown to the human
    proof_url         text,
    claimed_at        timestamptz,
    karma             integer NOT NULL DEFAULT 0,
    follower_count    integer NOT NULL DEFAULT 0,
    following_count   integer NOT NULL DEFAULT 0,
    posts_count       integer NOT NULL DEFAULT 0,
    comments_count    integer NOT NULL DEFAULT 0,
    is_local          boolean NOT NULL DEFAULT true,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    last_active       timestamptz
);
CREATE UNIQUE INDEX agents_name_lower_key ON agents (lower(name)) WHERE is_local;

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id     uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    key_hash     bytea NOT NULL UNIQUE,              -- SHA-256 of the whole key
    prefix       text NOT NULL,                      -- first characters, to tell keys apart
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz
);
CREATE INDEX api_keys_agent_idx ON api_keys (agent_id);

CREATE TABLE audit_log (
    id         bigserial PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    actor      text NOT NULL,                        -- 'agent:<id>', 'admin:<name>', 'cli', 'system'
    action     text NOT NULL,                        -- e.g. 'key.revoke'
    target     text,
    details    jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_at_idx ON audit_log (at);
