"""The ``edge`` resource: the tunable constants of the edge layer, editable in the launchpad."""

from typing import Optional

import dagster as dg

from prometheus_assets.core.edge.config import EdgeConfig


class EdgeResource(dg.ConfigurableResource):
    """Edge statistics and sizing parameters (defaults: core.edge.config.EdgeConfig; the seed's values).

    Invalid combinations (e.g. exposure_beta >= exposure_alpha, an unknown dimension weight)
    raise a pydantic ``ValidationError`` naming the field when the run starts.
    """

    n_min: int = 10
    support_k: float = 12.0
    mask_weight_alpha: float = 0.5
    strength_gain: float = 1.0
    exposure_alpha: float = 1.0
    exposure_beta: float = 0.5
    exposure_cap: Optional[float] = None
    dimension_weights: dict[str, float] = {}

    def config(self) -> EdgeConfig:
        """The validated :class:`EdgeConfig` of this run."""
        return EdgeConfig(
            n_min=self.n_min, support_k=self.support_k, mask_weight_alpha=self.mask_weight_alpha, strength_gain=self.strength_gain,
            exposure_alpha=self.exposure_alpha, exposure_beta=self.exposure_beta, exposure_cap=self.exposure_cap,
            dimension_weights=dict(self.dimension_weights),
        )
