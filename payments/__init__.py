"""Payments: the double-entry ledger, postings for the card domain, fares, top-ups, clearing."""
