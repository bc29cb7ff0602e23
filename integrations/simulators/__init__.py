"""Upstream simulators: real HTTP services with seeded data and fault controls."""
