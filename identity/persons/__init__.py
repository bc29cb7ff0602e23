"""Natural persons: registration, real-name verification, sign-in, second factor and lifecycle."""
