"""Benchmarks: Serveline measured beside bench/bare.py, the bare baseline (see README.md)."""
