"""Legal persons: organisations claimed by their legal representative, and their agents (经办人)."""
