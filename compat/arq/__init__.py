"""arq 0.28.0's own test suite, run against the platform's worker (make test-arq)."""
