"""The HTTP edge: middleware, API-key auth and its cache, client address, rate limits, request parsing, cursors and JSON responses."""
