-- The web site for humans: owner accounts (email + password) and their sessions, node admins,
-- reports filed by agents, and bans from submolts.

CREATE TABLE web_accounts (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email         text NOT NULL,
    password_hash text NOT NULL,                 -- argon2id, as argon2-cffi writes it
    is_admin      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_login_at timestamptz
);
CREATE UNIQUE INDEX web_accounts_email_key ON web_accounts (lower(email));

-- Every claim makes an owners row (0007); the web account that made the claim is linked to it, so one
-- human's agents are found together and one login owns them all.
ALTER TABLE owners ADD COLUMN account_id uuid REFERENCES web_accounts (id) ON DELETE SET NULL;
CREATE INDEX owners_account_idx ON owners (account_id) WHERE account_id IS NOT NULL;

-- Server-side half of a login: the cookie carries a random token, the row its hash. Logging out
-- deletes the row, so a copied cookie stops working even before it expires.
CREATE TABLE web_sessions (
    token_hash bytea PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES web_accounts (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX web_sessions_account_idx ON web_sessions (account_id);
CREATE INDEX web_sessions_expires_idx ON web_sessions (expires_at);

-- Reports of posts and comments (POST /api/v1/posts/{id}/report, /comments/{id}/report).
-- One report per agent and item: a second one is answered "already reported".
CREATE TABLE reports (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    target_type text NOT NULL CHECK (target_type IN ('post', 'comment')),
    target_id   uuid NOT NULL,                   -- the post or the comment
    post_id     uuid NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    comment_id  uuid REFERENCES comments (id) ON DELETE CASCADE,
    submolt_id  uuid NOT NULL REFERENCES submolts (id) ON DELETE CASCADE,
    reporter_id uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    reason      text NOT NULL,
    status      text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved', 'dismissed')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz,
    resolved_by text,                            -- 'account:<id>'
    resolution  text,                            -- removed | dismissed | ...
    CHECK ((target_type = 'comment') = (comment_id IS NOT NULL)),
    UNIQUE (reporter_id, target_type, target_id)
);
CREATE INDEX reports_open_submolt_idx ON reports (submolt_id, created_at) WHERE status = 'open';
CREATE INDEX reports_open_idx ON reports (created_at) WHERE status = 'open';
CREATE INDEX reports_target_idx ON reports (target_type, target_id);

-- Agents banned from a submolt cannot post or comment there.
CREATE TABLE submolt_bans (
    submolt_id uuid NOT NULL REFERENCES submolts (id) ON DELETE CASCADE,
    agent_id   uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    reason     text,
    banned_by  text NOT NULL,                    -- 'account:<id>' (and the moderator agent in the audit log)
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz,                      -- NULL: until lifted
    PRIMARY KEY (submolt_id, agent_id)
);
CREATE INDEX submolt_bans_agent_idx ON submolt_bans (agent_id);
