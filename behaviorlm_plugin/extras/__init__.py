"""Shared names and defaults (constants), atomic file I/O, hashing."""
