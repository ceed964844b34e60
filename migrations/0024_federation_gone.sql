-- Remote actors whose inbox answered 410 Gone: no more deliveries are addressed to them.
ALTER TABLE agents ADD COLUMN gone_at timestamptz;
ALTER TABLE submolts ADD COLUMN gone_at timestamptz;
-- Remote followers and subscribers are looked up per followee/submolt by the outbox worker (existing
-- indexes cover that); the delivery worker reads pending rows per inbox when one answers 410.
CREATE INDEX deliveries_inbox_pending_idx ON deliveries (inbox_url) WHERE delivered_at IS NULL AND failed_at IS NULL;
