"""Fault-injection tests: real processes, a real Redis, a side ledger outside Redis."""
