"""Ledger journal, balances and verification (the posting rules live in domain/ledger.py)."""
