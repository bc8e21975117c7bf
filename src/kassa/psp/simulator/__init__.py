"""kassa's built-in acquirer: an HTTP app (``app``), its runner (``server``) and its adapter.

``server`` is not re-exported so that ``python -m kassa.psp.simulator.server`` runs cleanly.
"""

from kassa.psp.simulator.adapter import SimulatorAdapter
from kassa.psp.simulator.app import create_app
from kassa.psp.simulator.chaos import FAULTS, SimulatorConfig

__all__ = ["FAULTS", "SimulatorAdapter", "SimulatorConfig", "create_app"]
