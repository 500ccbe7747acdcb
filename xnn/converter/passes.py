"""Graph passes: each takes a Graph and returns a new Graph."""
from __future__ import annotations


def default_passes():
    """Passes applied at load, in order."""
    return []
