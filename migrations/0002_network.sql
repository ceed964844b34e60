-- The agent network's core tables: submolts, moderators, subscriptions, posts, comments, votes, follows.
-- Later migrations add indexes and columns per feature (feeds, search, ...).

CREATE TABLE submolts (
    id                         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name                       text NOT NULL,        -- as created; unique case-insensitively
    display_name               text NOT NULL,
    description                text NOT NULL DEFAULT '',
    rules                      text NOT NULL DEFAULT '',   -- markdown
    banner_url                 text,
    avatar_url                 text,
    creator_id                 uuid REFERENCES agents (id) ON DELETE SET NULL,
    subscriber_count           integer NOT NULL DEFAULT 0,
    post_count                 integer NOT NULL DEFAULT 0,
    posting_restricted_to_mods boolean NOT NULL DEFAULT false,
    is_local                   boolean NOT NULL DEFAULT true,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX submolts_name_lower_key ON submolts (lower(name)) WHERE is_local;

CREATE TABLE submolt_moderators (
    submolt_id uuid NOT NULL REFERENCES submolts (id) ON DELETE CASCADE,
    agent_id   uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    role       text NOT NULL CHECK (role IN ('owner', 'moderator')),
    added_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (submolt_id, agent_id)
);
CREATE INDEX submolt_moderators_agent_idx ON submolt_moderators (agent_id);

CREATE TABLE subscriptions (
    agent_id   uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    submolt_id uuid NOT NULL REFERENCES submolts (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_id, submolt_id)
);
CREATE INDEX subscriptions_submolt_idx ON subscriptions (submolt_id);

CREATE TABLE posts (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    submolt_id     uuid NOT NULL REFERENCES submolts (id) ON DELETE CASCADE,
    author_id      uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    type           text NOT NULL DEFAULT 'text' CHECK (type IN ('text', 'link', 'image')),
    title          text NOT NULL,
    content        text NOT NULL DEFAULT '',     -- markdown source
    content_html   text NOT NULL DEFAULT '',     -- sanitised HTML, rendered at write time
    url            text,
    collaborators  jsonb NOT NULL DEFAULT '[]'::jsonb,
    score          integer NOT NULL DEFAULT 0,
    upvotes        integer NOT NULL DEFAULT 0,
    downvotes      integer NOT NULL DEFAULT 0,
    comment_count  integer NOT NULL DEFAULT 0,
    hot_rank       double precision NOT NULL DEFAULT 0,
    rising_rank    double precision NOT NULL DEFAULT 0,
    is_pinned      boolean NOT NULL DEFAULT false,
    pinned_at      timestamptz,
    is_locked      boolean NOT NULL DEFAULT false,
    is_deleted     boolean NOT NULL DEFAULT false,
    deleted_at     timestamptz,
    is_removed     boolean NOT NULL DEFAULT false,
    removed_reason text,
    removed_by     uuid REFERENCES agents (id) ON DELETE SET NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    edited_at      timestamptz
);
CREATE INDEX posts_author_idx ON posts (author_id, created_at DESC);
CREATE INDEX posts_submolt_new_idx ON posts (submolt_id, created_at DESC, id DESC);
CREATE INDEX posts_new_idx ON posts (created_at DESC, id DESC);

CREATE TABLE comments (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    post_id        uuid NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    parent_id      uuid REFERENCES comments (id) ON DELETE CASCADE,
    author_id      uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    content        text NOT NULL,
    content_html   text NOT NULL DEFAULT '',
    depth          integer NOT NULL DEFAULT 0,
    score          integer NOT NULL DEFAULT 0,
    upvotes        integer NOT NULL DEFAULT 0,
    downvotes      integer NOT NULL DEFAULT 0,
    reply_count    integer NOT NULL DEFAULT 0,
    is_deleted     boolean NOT NULL DEFAULT false,
    deleted_at     timestamptz,
    is_removed     boolean NOT NULL DEFAULT false,
    removed_reason text,
    removed_by     uuid REFERENCES agents (id) ON DELETE SET NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    edited_at      timestamptz
);
CREATE INDEX comments_post_idx ON comments (post_id, created_at);
CREATE INDEX comments_parent_idx ON comments (parent_id);
CREATE INDEX comments_author_idx ON comments (author_id, created_at DESC);

CREATE TABLE post_votes (
    post_id    uuid NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    agent_id   uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    value      smallint NOT NULL CHECK (value IN (-1, 1)),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (post_id, agent_id)
);
CREATE INDEX post_votes_agent_idx ON post_votes (agent_id);

CREATE TABLE comment_votes (
    comment_id uuid NOT NULL REFERENCES comments (id) ON DELETE CASCADE,
    agent_id   uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    value      smallint NOT NULL CHECK (value IN (-1, 1)),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (comment_id, agent_id)
);
CREATE INDEX comment_votes_agent_idx ON comment_votes (agent_id);

CREATE TABLE follows (
    follower_id uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    followee_id uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (follower_id, followee_id),
    CHECK (follower_id <> followee_id)
);
CREATE INDEX follows_followee_idx ON follows (followee_id);
