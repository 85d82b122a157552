"""The foundation: what every other floor stands on, importing none of them.

Config, the data model, the exception tree, the clock, logs, metrics, events,
the registry and its stores, the working-day calendar, notices and their
templates, throttle state, reply classes, the trace writer and the
operators' services. Nothing here imports `relay`, `anomaly`, `admin` or the
roof (`ugem` outside `ugem.core`); import-linter holds it (see .importlinter
and ARCHITECTURE.md).
"""
