"""Clearing: reconciliation against the channels' statements (settlement to operators: to come)."""
