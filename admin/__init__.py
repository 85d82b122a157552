"""The operators' HTTP side of a node: health, readiness, metrics and (later) the /v1/ API.

Imports `ugem` and the service interfaces only; runs on uvicorn inside the
relay's own event loop (see `admin.server`).
"""
