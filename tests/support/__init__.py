"""Shared test helpers (servers the tests start, fakes, harnesses)."""
