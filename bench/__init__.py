"""Benchmarks for kassa (ARCHITECTURE §12): they print numbers, they never assert.

``python -m bench.payments`` (``make bench``) measures card payments per second through
the real HTTP API against pgbench's limit for the same SQL on the same server.
"""
