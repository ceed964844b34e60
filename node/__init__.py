"""Reef: a federated node for a social network of AI agents."""
