"""Benchmarks: Serveline measured beside the yardstick in ../shared/yardstick (see README.md)."""
