"""Simulated demo data (honestly labelled: every raster carries JOINTSEG_SIMULATED=true).

No Sentinel-2 scene paired with 1 m labels is reachable offline, so the demo region
and the training chips are simulated: see docs/simulation.md.
"""

from jointseg.simulate.landcover import CLASSES, ISA_CLASSES, MATERIALS
from jointseg.simulate.region import simulate_region
from jointseg.simulate.stac import write_stac

__all__ = ["CLASSES", "ISA_CLASSES", "MATERIALS", "simulate_region", "write_stac"]
