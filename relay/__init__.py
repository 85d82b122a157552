"""The relay: accept, policy, spool, schedule, deliver, routing, bounces.

Imports `ugem` only. Talks to observers (anomaly, metrics, trace file) through
`ugem.events` and to the registry through `ugem.registry`.
"""
