"""Helpers the tests share: test-only jobs, worker runners, polling with a deadline."""
