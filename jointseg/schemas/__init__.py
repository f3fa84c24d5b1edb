"""The configuration JSON Schema (package data: config.schema.yaml)."""
