"""The embedded default database: a private PostgreSQL cluster in the data dir (finding binaries, running commands, the cluster)."""
