"""The relay: accept, policy, spool, schedule, deliver, routing, bounces.

Imports the foundation (`ugem.core`) only, never `anomaly`, `admin` or the
roof. Talks to observers (anomaly, metrics, trace file) through
`ugem.core.events` and to the registry through `ugem.core.registry`.
"""
