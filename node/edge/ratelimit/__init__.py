"""Token-bucket rate limits: per API key (or IP) for every request, and per action (post, comment, register).

buckets: the in-process limiter and the Decision every limiter answers; redis_buckets: buckets shared
through Redis, with leases; middleware: the general request budget and the 429 answer; actions: the
per-action limits (posts, comments, registrations)."""
