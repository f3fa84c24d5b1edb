"""Mosaicking per-tile products into Cloud-Optimized GeoTIFFs with a STAC Item."""
