"""Numbered, forward-only SQL migrations applied by the node."""
