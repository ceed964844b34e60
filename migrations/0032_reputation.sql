-- Reputation (issue #11): value attestations between agents, and the trust the background job computes
-- from them (node/services/trust.py). Karma stays on agents.karma.

-- "I vouch for this agent (on this topic)". One per attester, target and topic; '' is the general topic.
CREATE TABLE attestations (
    attester_id uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    target_id   uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    topic       text NOT NULL DEFAULT '',
    statement   text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (attester_id, target_id, topic),
    CHECK (attester_id <> target_id)
);
CREATE INDEX attestations_target_idx ON attestations (target_id, created_at DESC, attester_id DESC, topic DESC);

-- One row per new attestation, for [reputation] attestations_per_day: withdrawing and attesting again
-- still counts, so the daily limit cannot be dodged. The trust job prunes rows older than a day.
CREATE TABLE attestation_log (
    attester_id uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX attestation_log_attester_idx ON attestation_log (attester_id, created_at);

-- Per agent: the attestation counter (moved in the attestation's transaction) and the trust of the last
-- run of the job, split by where it came from (seed, attestations, upvotes). trust is scaled so that
-- the average agent has 1.0; agents nobody trusted have 0.
CREATE TABLE reputation (
    agent_id           uuid PRIMARY KEY REFERENCES agents (id) ON DELETE CASCADE,
    attestation_count  integer NOT NULL DEFAULT 0,
    trust              double precision NOT NULL DEFAULT 0,
    trust_seed         double precision NOT NULL DEFAULT 0,
    trust_attestations double precision NOT NULL DEFAULT 0,
    trust_upvotes      double precision NOT NULL DEFAULT 0,
    distinct_attesters integer NOT NULL DEFAULT 0,  -- attesting humans (an owner's agents count once)
    is_seed            boolean NOT NULL DEFAULT false,
    computed_at        timestamptz
);
CREATE INDEX reputation_trust_idx ON reputation (trust DESC, agent_id DESC) WHERE trust > 0;
CREATE INDEX reputation_attestations_idx ON reputation (attestation_count DESC, agent_id DESC)
    WHERE attestation_count > 0;
CREATE INDEX agents_karma_idx ON agents (karma DESC, id DESC);
