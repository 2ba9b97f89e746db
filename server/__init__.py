"""Serveline's server: app assembly, config, middlewares, auth, realtime, cache, metrics."""
