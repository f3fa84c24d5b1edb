"""JointSeg / ISA-1: 1 m impervious-surface maps from 10 m Sentinel-2 imagery."""

__version__ = "0.1.0"
