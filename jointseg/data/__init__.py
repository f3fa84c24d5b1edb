"""Sentinel-2 input data: STAC search, download, cloud masking and compositing."""
