"""UGEM: the unified e-mail gateway of "electronic government".

This package holds what every part of a node shares: configuration, the data
model, the registry of connections and its stores, events, metrics, the clock,
the CLI and the wiring of a node. It imports nothing from `relay`, `anomaly`
or `admin`, except in `ugem.node`, the one place that knows everyone.
"""

__version__ = "0.1.0"
