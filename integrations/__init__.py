"""Connectors to the city's services, and the simulators that stand in for them in development."""
