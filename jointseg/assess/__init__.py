"""Accuracy assessment: WorldCover, reference samples, estimators, change, tables."""
