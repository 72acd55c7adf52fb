"""Prometheus: a quant research and allocation stack as a Dagster code location.

The package is split in two:

* ``prometheus_assets.core`` holds the domain logic (pure pandas/numpy/scikit-learn, no Dagster, no I/O);
* everything else (``assets``, ``resources``, ``definitions``) is the thin Dagster shell around it.
"""
