"""The payouts room points inward: its modules import only the domain and each other, so
services can depend on payouts.base and bootstrap alone picks the rail."""

from __future__ import annotations

from tests.unit.test_layering import kassa_imports


def test_payouts_imports_only_domain_and_itself():
    modules = kassa_imports("payouts")
    assert "payouts/base.py" in modules
    outward = {m: sorted(n for n in names
                         if not n.startswith(("kassa.domain.", "kassa.payouts.")))
               for m, names in modules.items()}
    assert {m: n for m, n in outward.items() if n} == {}
    # the protocol does not know any concrete rail
    assert not any(n.startswith("kassa.payouts.bank_simulator") for n in modules["payouts/base.py"])
