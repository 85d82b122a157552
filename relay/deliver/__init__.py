"""Delivery: SMTP out to the next hops of a recipient domain, and what each reply means.

`routing` finds the next hops, `requirements` the TLS a destination needs
(`mta_sts` its published policy), `pool` opens and reuses sessions (as many
as `backoff` lets a destination have after rate-limit replies),
`smtp_client` speaks the wire (pipelining), `transaction` runs MAIL, RCPT
and DATA and records each recipient's outcome, `trouble` holds every
failure's policy and reply code, `dkim_sign` signs outbound mail. Promises:
each recipient ends delivered, deferred or bounced, with the reply that
decided it; a failure of ours defers (4xx), it never bounces.
"""
