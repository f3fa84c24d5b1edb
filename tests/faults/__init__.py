"""Fault injection for the data stages: an HTTP proxy on 127.0.0.1 that fails on schedule."""

from tests.faults.proxy import Fault, FaultProxy, Rule

__all__ = ["Fault", "FaultProxy", "Rule"]
