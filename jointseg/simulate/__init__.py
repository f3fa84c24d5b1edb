"""SIMULATED data for the demo region and for training (see docs/simulation.md).

No Sentinel-2 scene paired with 1 m labels is reachable offline, so the demo
region is simulated: a 1 m landscape, its HR image, Sentinel-2 L2A-like scenes
with clouds and SCL, a WorldCover-format map and a STAC catalogue. Every raster
carries the tag ``JOINTSEG_SIMULATED=true``.
"""
