"""Reconciliation of PSP settlement reports: report parsers behind one interface, and the
PSPs' contracted fees kassa checks the reports against."""
