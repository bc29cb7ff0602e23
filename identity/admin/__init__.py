"""Central user management for the city's operators (support, auditor, security admin)."""
