"""Payout rails: the adapter protocol (base.py) and the simulated bank (bank_simulator/).

This room sits beside psp/ rather than inside it: a payout goes to the merchant's bank, not
to the acquirer, lives for days (paid, then maybe returned) and fails in its own terms
(Stripe's payout failure codes). A PSP that also pays out (Stripe's payouts API) implements
:class:`kassa.payouts.base.PayoutAdapter` in its own adapter package; services import only
base.py, and bootstrap wires the concrete rail (ARCHITECTURE §10)."""
