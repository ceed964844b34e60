"""The ground floor: configuration, the database and its embedded cluster, migrations, LISTEN, logs, metrics, GC tuning, app keys and the error type; imports nothing above it."""
