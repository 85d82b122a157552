"""The anomaly detector: per-connection features, baselines, verdicts, replay and scoring.

Imports `ugem` only and sees the relay through events and the registry.
`trace` reads traffic traces, `features` keeps each connection's sliding
windows, `baseline` its learned normal traffic, `detector` turns both into a
verdict with a reason, `replay` runs it over a trace in trace time and
`evaluate` scores a replay against labels (`ugem anomaly replay|evaluate`).
`enforce` runs it in a node (`[anomaly] mode`: suspend, or shadow: record only);
incidents (`/v1/incidents`) come next.
"""
