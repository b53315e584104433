"""The vessel workflow: vesselness, vessel mask (and, as they arrive, centerlines,
radius, stenosis and meshes)."""
from .vesselness import VesselMaskParameters, vessel_mask, vesselness

__all__ = ["VesselMaskParameters", "vessel_mask", "vesselness"]
