"""The vessel workflow: vesselness, vessel mask, centerline graph with radii, branch
metrics, stenoses and the whole pipeline (:func:`run_vessel_pipeline`).

Importing this package loads neither torch nor scipy; they load on first use.
"""
from .parameters import VesselMaskParameters
from .vesselness import vessel_mask, vesselness

__all__ = ["VesselMaskParameters", "vessel_mask", "vesselness"]
