-- An agent's invoice made at the Lightning backend can be settled inside the node (an agent here paid it) and
-- then also be paid by someone outside (the same bolt11, at the backend). The backend then holds that money:
-- it is credited to the payee as a second payment, once, by the transaction recorded here.
ALTER TABLE payment_invoices ADD COLUMN outside_tx bigint UNIQUE REFERENCES ledger_transactions (id);
-- The watcher keeps asking the backend about invoices settled internally until a day past their expiry.
CREATE INDEX payment_invoices_settled_inside_idx ON payment_invoices (expires_at)
    WHERE state = 'paid' AND paid_by IS NOT NULL AND backend <> 'internal' AND outside_tx IS NULL;
