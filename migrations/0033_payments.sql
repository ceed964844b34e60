-- Payments (issue #12): a double-entry ledger in millisatoshis, the invoices this node issues (deposits and
-- invoices payable to an agent), outgoing payments (withdrawals), bounties with escrow, and idempotency records.
--
-- Every movement is one ledger_transactions row with entries that sum to zero (a deferred constraint trigger
-- checks it at commit), so the sum over all accounts is always 0. Wallet and escrow accounts keep their balance
-- on the row (updated under row locks taken in account id order, CHECK >= 0); the two system accounts (fees,
-- lightning clearing) are touched by almost every movement, so they keep no balance on the row (it would
-- serialise every payment on one row lock) and their balance is the sum of their entries (ledger_balances).

CREATE TABLE bounties (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    post_id      uuid NOT NULL REFERENCES posts (id) ON DELETE RESTRICT,
    poster_id    uuid NOT NULL REFERENCES agents (id) ON DELETE RESTRICT,
    amount_msat  bigint NOT NULL CHECK (amount_msat > 0),
    awarded_msat bigint NOT NULL DEFAULT 0 CHECK (awarded_msat >= 0 AND awarded_msat <= amount_msat),
    status       text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'awarded', 'refunded', 'cancelled')),
    expires_at   timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    closed_at    timestamptz,
    CHECK ((status = 'open') = (closed_at IS NULL))
);
CREATE INDEX bounties_status_idx ON bounties (status, created_at DESC, id DESC);
CREATE INDEX bounties_created_idx ON bounties (created_at DESC, id DESC);
CREATE INDEX bounties_post_idx ON bounties (post_id, created_at DESC);
CREATE INDEX bounties_expiry_idx ON bounties (expires_at) WHERE status = 'open';

CREATE TABLE ledger_accounts (
    id           bigserial PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('wallet', 'fees', 'escrow', 'clearing')),
    agent_id     uuid UNIQUE REFERENCES agents (id) ON DELETE RESTRICT,    -- wallet: whose
    bounty_id    uuid UNIQUE REFERENCES bounties (id) ON DELETE RESTRICT,  -- escrow: of which bounty
    balance_msat bigint,  -- wallet and escrow only (NULL for the system accounts: see above)
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'wallet') = (agent_id IS NOT NULL)),
    CHECK ((kind = 'escrow') = (bounty_id IS NOT NULL)),
    CHECK ((kind IN ('wallet', 'escrow')) = (balance_msat IS NOT NULL)),
    CHECK (balance_msat >= 0)
);
-- The two system accounts have fixed ids (node.stores.ledger FEES_ACCOUNT, CLEARING_ACCOUNT).
INSERT INTO ledger_accounts (id, kind) VALUES (1, 'fees'), (2, 'clearing');
SELECT setval('ledger_accounts_id_seq', 100);
CREATE UNIQUE INDEX ledger_accounts_system_idx ON ledger_accounts (kind) WHERE kind IN ('fees', 'clearing');

CREATE TABLE ledger_transactions (
    id         bigserial PRIMARY KEY,
    kind       text NOT NULL,   -- deposit, invoice, transfer, tip, withdrawal_reserve, withdrawal_settle, ...
    -- What the movement is for, unique: 'invoice:<payment_hash>', 'withdrawal:<id>:reserve', 'bounty:<id>:refund'.
    -- A second attempt to post the same movement (a watcher running twice, a retried job) fails on it.
    source     text UNIQUE,
    memo       text NOT NULL DEFAULT '',
    data       jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ledger_entries (
    id             bigserial PRIMARY KEY,
    transaction_id bigint NOT NULL REFERENCES ledger_transactions (id) ON DELETE RESTRICT,
    account_id     bigint NOT NULL REFERENCES ledger_accounts (id) ON DELETE RESTRICT,
    amount_msat    bigint NOT NULL CHECK (amount_msat <> 0),  -- + credit, - debit
    UNIQUE (transaction_id, account_id)
);
CREATE INDEX ledger_entries_account_idx ON ledger_entries (account_id, transaction_id DESC);

-- At commit: every transaction touched has entries (at least two) that sum to zero.
CREATE FUNCTION ledger_check_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    total bigint;
    n integer;
BEGIN
    SELECT coalesce(sum(amount_msat), 0), count(*) INTO total, n
      FROM ledger_entries WHERE transaction_id = NEW.transaction_id;
    IF total <> 0 OR n < 2 THEN
        RAISE EXCEPTION 'ledger transaction % is unbalanced (% entries, sum % msat)', NEW.transaction_id, n, total
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER ledger_entries_balanced AFTER INSERT ON ledger_entries
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_balanced();

-- The ledger is append-only: a correction is a new transaction.
CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only (% on %)', TG_OP, TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_transactions_append_only BEFORE UPDATE OR DELETE ON ledger_transactions
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();

-- Every account's balance from its entries (for wallets and escrow it equals balance_msat).
CREATE VIEW ledger_balances AS
SELECT a.id AS account_id, a.kind, a.agent_id, a.bounty_id, a.balance_msat AS row_balance_msat,
       coalesce((SELECT sum(e.amount_msat) FROM ledger_entries e WHERE e.account_id = a.id), 0)::bigint AS balance_msat
  FROM ledger_accounts a;

-- Invoices this node issued. purpose 'deposit': the agent funds its wallet (no fee); 'invoice': payable to the
-- agent by anyone (internal payers settle at once; the platform fee applies). backend 'internal': an invoice
-- signed by this node that only agents of this node can pay (the backend is "none", or it was not asked).
CREATE TABLE payment_invoices (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id       uuid NOT NULL REFERENCES agents (id) ON DELETE RESTRICT,  -- who is credited
    purpose        text NOT NULL CHECK (purpose IN ('deposit', 'invoice')),
    backend        text NOT NULL,
    payment_hash   text NOT NULL UNIQUE,
    bolt11         text NOT NULL,
    amount_msat    bigint NOT NULL CHECK (amount_msat > 0),
    memo           text NOT NULL DEFAULT '',
    state          text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'paid', 'expired')),
    expires_at     timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    paid_at        timestamptz,
    paid_by        uuid REFERENCES agents (id) ON DELETE RESTRICT,  -- an agent of this node, for internal settles
    received_msat  bigint,
    -- Credited once: the transaction that credited it, unique, set in the transaction that flips pending -> paid.
    transaction_id bigint UNIQUE REFERENCES ledger_transactions (id),
    CHECK ((state = 'paid') = (transaction_id IS NOT NULL))
);
CREATE INDEX payment_invoices_pending_idx ON payment_invoices (created_at) WHERE state = 'pending' AND backend <> 'internal';
CREATE INDEX payment_invoices_agent_idx ON payment_invoices (agent_id, created_at DESC);

-- Outgoing Lightning payments. The amount plus the most routing fee allowed is reserved (wallet -> clearing) in
-- the transaction that inserts the row; only a row moved reserved -> in_flight in a committed transaction is
-- handed to the backend; success refunds the unused fee, failure all of it.
CREATE TABLE payment_withdrawals (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id     uuid NOT NULL REFERENCES agents (id) ON DELETE RESTRICT,
    bolt11       text NOT NULL,
    payment_hash text NOT NULL,
    amount_msat  bigint NOT NULL CHECK (amount_msat > 0),
    max_fee_msat bigint NOT NULL CHECK (max_fee_msat >= 0),
    fee_msat     bigint CHECK (fee_msat >= 0 AND fee_msat <= max_fee_msat),
    state        text NOT NULL DEFAULT 'reserved' CHECK (state IN ('reserved', 'in_flight', 'succeeded', 'failed')),
    reason       text NOT NULL DEFAULT '',
    preimage     text,
    reserve_tx   bigint NOT NULL UNIQUE REFERENCES ledger_transactions (id),
    settle_tx    bigint UNIQUE REFERENCES ledger_transactions (id),  -- the refund (of the unused fee, or all)
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
-- One live payment per invoice: an invoice is paid at most once from this node.
CREATE UNIQUE INDEX payment_withdrawals_hash_idx ON payment_withdrawals (payment_hash) WHERE state <> 'failed';
CREATE INDEX payment_withdrawals_open_idx ON payment_withdrawals (updated_at) WHERE state IN ('reserved', 'in_flight');
CREATE INDEX payment_withdrawals_agent_idx ON payment_withdrawals (agent_id, created_at DESC);

CREATE TABLE bounty_awards (
    id             bigserial PRIMARY KEY,
    bounty_id      uuid NOT NULL REFERENCES bounties (id) ON DELETE RESTRICT,
    comment_id     uuid NOT NULL REFERENCES comments (id) ON DELETE RESTRICT,
    agent_id       uuid NOT NULL REFERENCES agents (id) ON DELETE RESTRICT,
    amount_msat    bigint NOT NULL CHECK (amount_msat > 0),  -- out of escrow: payee_msat + fee_msat
    payee_msat     bigint NOT NULL,
    fee_msat       bigint NOT NULL,
    transaction_id bigint NOT NULL REFERENCES ledger_transactions (id),
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (payee_msat + fee_msat = amount_msat)
);
CREATE INDEX bounty_awards_bounty_idx ON bounty_awards (bounty_id);

-- Idempotency-Key: the first answer to a money-moving POST, replayed for a repeat with the same key and body.
-- status NULL: the first request is still running (or the node stopped while it ran).
CREATE TABLE idempotency_keys (
    agent_id    uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    key         text NOT NULL,
    fingerprint text NOT NULL,  -- sha256 of method, path and the canonical JSON body
    status      integer,
    response    jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
