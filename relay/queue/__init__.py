"""The queue: every accepted message, durable, until it is delivered, bounced or expired.

`spool` keeps them on disk (fsync before the 250; records, SQL, writer and
recovery in the `spool_*` modules; `reserve` keeps room for a full disk),
`message` is a queued message, `schedule` decides when and where each is
tried, `bounce` writes the DSNs and `own_mail` signs the gateway's own mail.
Promises: no acknowledged message is lost (a duplicate is better than a
loss); a torn record is quarantined, never fatal. Failures are `SpoolError`
and `SpoolFullError` (ugem.core.errors).
"""
