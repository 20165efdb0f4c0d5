"""Prometheus metrics kept in Redis: ``record`` is what API and workers write, ``collect`` what /metrics reads."""
