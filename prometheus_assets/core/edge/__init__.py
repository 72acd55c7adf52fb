"""Global edge and position sizing (seed: Simplified Allocation & Global Edge Plan).

* :mod:`.scope`: the unified scope dimensions and the scope-mask language;
* :mod:`.config`: :class:`EdgeConfig`, every constant of the layer;
* :mod:`.stats`: ``pattern_scope_stats`` / ``edge_history`` from closed trades, incremental;
* :mod:`.decay`: per-mask edge decay (linear + exponential fits) and ``decay_mult``;
* :mod:`.sizing`: ``pm_strength`` ladder, ``exposure_skew``, ``max_alloc`` — the one sizing formula.
"""
