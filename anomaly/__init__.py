"""The anomaly detector: per-connection features, baselines, verdicts, enforcement, replay.

Imports `ugem` only and sees the relay through events and the registry. It is
built in its own issue; until then this package is empty and a node writes
the traffic trace (`[anomaly] trace_file`) that the detector will replay.
"""
