"""Load generator, sink and the side-by-side comparison with a peer MTA.

Imports the standard library and libraries only, never the gateway's own
packages, so it measures any SMTP server the same way. Built in its own issue.
"""
