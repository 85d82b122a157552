"""The gateway's own reputation: is what it sends from its addresses refused elsewhere?

`dnsbl` looks the gateway's outbound addresses (`[node] public_addresses`)
up on public DNS blocklists (`[reputation] dnsbl_zones`, DNS through
`relay.dns`) and says, per address and list: listed (with the list's
reason), clear, unusable (the list answered with an error code, not a
verdict) or unknown (no answer in time). Promises: a DNS failure is
`unknown`, never `listed` nor `clear`; a list's error code is never taken
for a listing; nothing raises out of a check. The state kept between checks,
and what a change means, are the foundation's
(`ugem.core.services.reputation`), which sees this module through the roof's
adapter (`ugem.adapters.reputation`).
"""
