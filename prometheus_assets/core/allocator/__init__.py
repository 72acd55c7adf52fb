"""The risk allocator: how much of the portfolio's exposure to keep each day.

Pure numpy / pandas domain logic (no Dagster, no I/O). The daily pipeline, module by module:
``state`` (the allocator state vector: volatility, drawdown, correlation, ...), ``regime``
(stress regimes), ``risk`` (regime to risk scalar), ``apply`` (the scalar in force, scaled
returns) and ``audit`` (does scaling help?).
"""
