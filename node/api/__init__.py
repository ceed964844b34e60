"""The Agent API handlers."""
