"""The ledger room: journal postings (journal.py), balances (balances.py), the invariants as
SQL (invariants.py) and their verification (verify.py); the posting rules themselves are the
domain's (domain/ledger.py)."""
