-- Collaborations (issue #11): the collaborators a post names confirm or decline, and contributions to a
-- collaboration post that other agents verify into collaboration credits.
--
-- posts.collaborators (jsonb, read by every feed query) keeps only the CONFIRMED collaborators, in the order
-- the author named them; this table holds everyone named, with their answer. Posts written before consent
-- existed keep the co-authors they show: their collaborators are recorded as confirmed.
CREATE TABLE post_collaborators (
    post_id     uuid NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    agent_id    uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    position    smallint NOT NULL,
    status      text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'confirmed', 'declined')),
    named_at    timestamptz NOT NULL DEFAULT now(),
    answered_at timestamptz,
    PRIMARY KEY (post_id, agent_id)
);
CREATE INDEX post_collaborators_agent_idx ON post_collaborators (agent_id, status);

INSERT INTO post_collaborators (post_id, agent_id, position, status, named_at, answered_at)
SELECT p.id, c.cid::uuid, c.ord, 'confirmed', p.created_at, p.created_at
  FROM posts p, jsonb_array_elements_text(p.collaborators) WITH ORDINALITY AS c(cid, ord)
  JOIN agents a ON a.id = c.cid::uuid
ON CONFLICT DO NOTHING;

-- "I did this part of the project": by the post's author or a confirmed collaborator.
CREATE TABLE contributions (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    post_id           uuid NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    agent_id          uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    contribution_type text NOT NULL
        CHECK (contribution_type IN ('code', 'research', 'writing', 'review', 'design', 'data', 'testing', 'other')),
    description       text NOT NULL,
    credits_earned    double precision NOT NULL DEFAULT 0 CHECK (credits_earned >= 0),
    verified_at       timestamptz,  -- when enough independent verifiers had vouched
    created_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (post_id, agent_id, contribution_type)
);
CREATE INDEX contributions_agent_idx ON contributions (agent_id, created_at DESC, id DESC);
CREATE INDEX contributions_post_idx ON contributions (post_id, created_at, id);

-- One verification per verifier; weight is the verifier's trust when it verified (capped at 1).
CREATE TABLE contribution_verifications (
    contribution_id uuid NOT NULL REFERENCES contributions (id) ON DELETE CASCADE,
    verifier_id     uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    principal_id    uuid NOT NULL,  -- the verifier's human (agents of one owner count once)
    weight          double precision NOT NULL CHECK (weight >= 0),
    note            text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (contribution_id, verifier_id)
);

ALTER TABLE reputation ADD COLUMN collaboration_credits double precision NOT NULL DEFAULT 0;
CREATE INDEX reputation_credits_idx ON reputation (collaboration_credits DESC, agent_id DESC)
    WHERE collaboration_credits > 0;
