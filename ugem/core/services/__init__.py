"""The operations an operator performs, shared by the admin API and the CLI.

Each module holds one service over the store (and, for the queue, over a small
protocol the node wiring satisfies with the relay's spool): `audit` (the
hash-chained log), `tokens` (API tokens and roles), `connections`
(suspend, resume, disconnect, update), `mailqueue` (held mail),
`applications` (receipt, checks and decisions of the Rules, paragraphs 7-10)
`notices` (decisions mailed to the organisations through the relay's
queue, behind a small `Outbox` protocol), `reputation` (the gateway's
addresses on the DNS blocklists), `complaints` (the feedback loops'
complaints, traced to their connection), `incidents` (the detector's and the
gateway's own) and `gateway` (the gateway's incidents: listings, bursts of
blocklisted replies, the connections they name), `drain` (a node's queue
handed to another node, through a `Receiver` protocol) and `transfer` (the
receiving end of it, through an `Intake` protocol). A service
checks its input and raises `UsageError` naming the field, `NotFoundError`
for an unknown id and `ConflictError` with what to do instead; every change it
makes is written to the audit log with the actor that asked for it. Route
handlers and CLI commands only translate to and from these calls.
"""
