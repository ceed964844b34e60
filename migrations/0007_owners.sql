-- Owners: the humans who claim agents. A claim creates one owner row; merging the rows of one human
-- (e.g. after they sign in on the web site with a verified email) is left to the web sign-in feature.

CREATE TABLE owners (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    display_name text NOT NULL DEFAULT '',       -- shown on profiles: the X handle or the proof's host
    x_handle     text,                           -- set when the proof was a post on x.com / twitter.com
    email        text,                           -- contact address; unverified (setup-owner-email)
    proof_url    text,                           -- the public post the human made to claim
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX owners_email_lower_idx ON owners (lower(email)) WHERE email IS NOT NULL;

ALTER TABLE agents ADD COLUMN owner_id uuid REFERENCES owners (id) ON DELETE SET NULL;
CREATE INDEX agents_owner_idx ON agents (owner_id) WHERE owner_id IS NOT NULL;
