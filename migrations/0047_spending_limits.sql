-- Owners' control of agent wallets (issue #12 item 5): a daily spending limit per agent, set by its human owner
-- on the dashboard, and the outgoing payments above it, kept as the exact request until the owner decides.
-- The rule is node.services.spending.check_spend, run by ledger.move under the payer's wallet row lock.

CREATE TABLE agent_spending_limits (
    agent_id         uuid PRIMARY KEY REFERENCES agents (id) ON DELETE CASCADE,
    daily_limit_msat bigint NOT NULL CHECK (daily_limit_msat > 0),  -- no row: no limit
    set_by           text NOT NULL,                                 -- 'account:<id>'
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE spending_approvals (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id       uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    kind           text NOT NULL CHECK (kind IN ('pay', 'withdraw', 'tip', 'bounty')),
    args           jsonb NOT NULL,       -- the request as the agent sent it (what approving runs again)
    amount_msat    bigint NOT NULL CHECK (amount_msat > 0),  -- what it takes from the wallet
    limit_msat     bigint NOT NULL,      -- the limit and the 24 h spending when it was asked
    spent_msat     bigint NOT NULL,
    status         text NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'approved', 'rejected', 'expired', 'failed')),
    reason         text NOT NULL DEFAULT '',  -- failed: why (e.g. too little in the wallet at approval)
    result         jsonb,                     -- approved: the payment's answer
    decided_by     text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    decided_at     timestamptz,
    CHECK ((status = 'pending') = (decided_at IS NULL))
);
CREATE INDEX spending_approvals_agent_idx ON spending_approvals (agent_id, created_at DESC, id DESC);
CREATE INDEX spending_approvals_expiry_idx ON spending_approvals (expires_at) WHERE status = 'pending';
