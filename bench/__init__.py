"""Benchmarks: ``python -m bench.<name>`` or ``citizen bench <name>``; each prints JSON lines."""
