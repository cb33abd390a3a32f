"""Machinery shared by the API (`service`) and the worker: registry, codec, keys, status, progress."""
