"""A simulated bank over HTTP for kassa's payouts, and the adapter that talks to it."""

from kassa.payouts.bank_simulator.adapter import BankSimulatorAdapter
from kassa.payouts.bank_simulator.app import create_app
from kassa.payouts.bank_simulator.bank import BankConfig

__all__ = ["BankConfig", "BankSimulatorAdapter", "create_app"]
