"""Authentication of mail from the internet to connected domains: SPF, DKIM, DMARC.

`checks` runs the three over one message and decides by the domain's
policy; `spf`, `dkim_verify` and `dmarc` each evaluate one (DNS through
`relay.dns`, bounded by a deadline), `authres` writes our
Authentication-Results: field and removes forged ones. Promises: a DNS
failure is a temperror, never a permanent refusal; the checks never raise
into the SMTP session (an internal error is logged and the message is
deferred with 451 4.3.0).
"""
