"""Token-bucket rate limits: per API key (or IP) for every request, and per action (post, comment, register).

buckets: the in-process limiter and the Decision every limiter answers; leases: what the shared limiters
have in common (leases, the fallback); redis_buckets and pg_buckets: buckets shared through Redis or
PostgreSQL; limiters: which one a node uses; middleware: the general request budget and the 429 answer; actions: the
per-action limits (posts, comments, registrations)."""
