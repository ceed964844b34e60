-- One row per serving process and minute, for the admin's status page (/admin/status): the process's requests,
-- 4xx and 5xx answers and latency histogram in that minute (node/platform/samples.py), and its open WebSocket
-- sockets when sampled. The page sums the processes of each minute (p99 from the summed buckets).
-- latency_buckets: counts per bound of node.platform.metrics.BUCKETS, then one beyond the last (+Inf).
-- instance: host:pid of the process. The background process deletes rows older than 48 hours.
CREATE TABLE node_samples (
    minute          timestamptz NOT NULL,
    instance        text NOT NULL,
    requests        integer NOT NULL DEFAULT 0,
    errors_4xx      integer NOT NULL DEFAULT 0,
    errors_5xx      integer NOT NULL DEFAULT 0,
    latency_buckets integer[] NOT NULL,
    open_sockets    integer NOT NULL DEFAULT 0,
    PRIMARY KEY (minute, instance)
);
