-- Federation: actors (local keys, remote identities), object ids, the inbox, the outbox and delivery.

-- Agents and submolts are ActivityPub actors. Local ones get a key pair on first use; remote ones are
-- rows keyed by their actor URL, so that remote content joins feeds, threads and profiles like local.
ALTER TABLE agents
    ADD COLUMN actor_url        text,          -- remote: the actor id; local: NULL (derived from base URL)
    ADD COLUMN domain           text,          -- remote: host[:port]; local: NULL
    ADD COLUMN inbox_url        text,
    ADD COLUMN shared_inbox_url text,
    ADD COLUMN ap_type          text NOT NULL DEFAULT 'Person',
    ADD COLUMN public_key_pem   text,
    ADD COLUMN private_key_pem  text,          -- local actors only
    ADD COLUMN fetched_at       timestamptz;   -- remote: when the actor document was last read
CREATE UNIQUE INDEX agents_actor_url_key ON agents (actor_url) WHERE actor_url IS NOT NULL;
CREATE UNIQUE INDEX agents_remote_name_key ON agents (lower(name), domain) WHERE NOT is_local;

ALTER TABLE submolts
    ADD COLUMN actor_url        text,
    ADD COLUMN domain           text,
    ADD COLUMN inbox_url        text,
    ADD COLUMN shared_inbox_url text,
    ADD COLUMN followers_url    text,
    ADD COLUMN public_key_pem   text,
    ADD COLUMN private_key_pem  text,
    ADD COLUMN fetched_at       timestamptz;
CREATE UNIQUE INDEX submolts_actor_url_key ON submolts (actor_url) WHERE actor_url IS NOT NULL;
CREATE UNIQUE INDEX submolts_remote_name_key ON submolts (lower(name), domain) WHERE NOT is_local;

-- Remote posts and comments keep their ActivityPub id; local ones derive it from the base URL.
ALTER TABLE posts ADD COLUMN ap_id text, ADD COLUMN is_local boolean NOT NULL DEFAULT true;
CREATE UNIQUE INDEX posts_ap_id_key ON posts (ap_id) WHERE ap_id IS NOT NULL;
ALTER TABLE comments ADD COLUMN ap_id text, ADD COLUMN is_local boolean NOT NULL DEFAULT true;
CREATE UNIQUE INDEX comments_ap_id_key ON comments (ap_id) WHERE ap_id IS NOT NULL;
-- A remote Like/Dislike is undone by its own id.
ALTER TABLE post_votes ADD COLUMN ap_id text;
ALTER TABLE comment_votes ADD COLUMN ap_id text;

-- Follows of and by remote actors wait for Accept; local follows are accepted at once.
ALTER TABLE follows ADD COLUMN accepted boolean NOT NULL DEFAULT true, ADD COLUMN ap_id text;
ALTER TABLE subscriptions ADD COLUMN accepted boolean NOT NULL DEFAULT true, ADD COLUMN ap_id text;

-- The node's own Application actor (signs fetches) and other single-row secrets.
CREATE TABLE instance_actor (
    id              boolean PRIMARY KEY DEFAULT true CHECK (id),
    public_key_pem  text NOT NULL,
    private_key_pem text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Domain events written by services in the same transaction as the change (the outbox pattern).
-- Services never import federation: they record what happened; the federation worker turns each
-- event into an activity and its delivery rows, in one transaction, and marks the event done.
CREATE TABLE outbox_events (
    id           bigserial PRIMARY KEY,
    kind         text NOT NULL,                -- e.g. post.created, comment.deleted, vote.cast, follow.created
    actor_id     uuid,                         -- the local agent (or submolt) acting
    object_id    uuid,                         -- the post/comment/agent/submolt concerned
    data         jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    processed_at timestamptz
);
CREATE INDEX outbox_events_pending_idx ON outbox_events (id) WHERE processed_at IS NULL;

-- Activities this node published (served from outbox collections, referenced by deliveries).
CREATE TABLE activities (
    id         bigserial PRIMARY KEY,
    ap_id      text NOT NULL UNIQUE,
    actor_url  text NOT NULL,
    type       text NOT NULL,
    body       jsonb NOT NULL,
    public     boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX activities_actor_idx ON activities (actor_url, id DESC);

-- One row per (activity, target inbox); shared inboxes collapsed before insert.
CREATE TABLE deliveries (
    id              bigserial PRIMARY KEY,
    activity_id     bigint NOT NULL REFERENCES activities (id) ON DELETE CASCADE,
    inbox_url       text NOT NULL,
    host            text NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    last_status     integer,
    delivered_at    timestamptz,
    failed_at       timestamptz,            -- gave up (410 Gone, or retries exhausted)
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (activity_id, inbox_url)
);
CREATE INDEX deliveries_due_idx ON deliveries (next_attempt_at) WHERE delivered_at IS NULL AND failed_at IS NULL;
CREATE INDEX deliveries_host_idx ON deliveries (host) WHERE delivered_at IS NULL AND failed_at IS NULL;

-- The state of each peer host, for backoff and the admin's view.
CREATE TABLE peer_hosts (
    host              text PRIMARY KEY,
    status            text NOT NULL DEFAULT 'up' CHECK (status IN ('up', 'down')),
    consecutive_fails integer NOT NULL DEFAULT 0,
    last_success_at   timestamptz,
    last_failure_at   timestamptz,
    next_probe_at     timestamptz,
    software          text
);

-- Every activity received, stored before 202 and processed by a worker; ids deduplicate.
CREATE TABLE inbox_activities (
    id           bigserial PRIMARY KEY,
    ap_id        text NOT NULL UNIQUE,
    actor_url    text NOT NULL,
    type         text NOT NULL,
    body         jsonb NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    attempts     integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    processed_at timestamptz,
    error        text
);
CREATE INDEX inbox_activities_pending_idx ON inbox_activities (next_attempt_at) WHERE processed_at IS NULL;

-- Remote public keys, cached by key id (refetched once when a signature fails: key rotation).
CREATE TABLE remote_keys (
    key_id         text PRIMARY KEY,
    owner_url      text NOT NULL,
    public_key_pem text NOT NULL,
    fetched_at     timestamptz NOT NULL DEFAULT now()
);
