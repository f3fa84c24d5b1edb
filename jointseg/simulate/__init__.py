"""Simulated demo data (honestly labelled: every raster carries JOINTSEG_SIMULATED=true).

No Sentinel-2 scene paired with 1 m labels is reachable offline, so the demo region
and the training chips are simulated: see docs/simulation.md. ``servers`` runs the
loopback STAC API and HTTP range file server that serve the simulated catalogue.

Submodules are imported on use (``jointseg.simulate.region`` pulls in scipy), so that
``jointseg.simulate.servers`` stays light for Snakemake's start-up.
"""
