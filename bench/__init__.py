"""Benchmarks: the platform next to raw arq on the same Redis, in one run (`make bench`)."""
