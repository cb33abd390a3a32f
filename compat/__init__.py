"""Compatibility harnesses: third-party test suites run against the platform."""
