"""The roof's adapters: the operators' services bound to the relay's spool and scheduler.

The services (ugem.core.services, the foundation) declare what they need as small
protocols (a mail queue, an outbox, a DNS check); the relay knows nothing of
them. These modules implement those protocols over the relay's objects, so
the only code that knows both floors sits with the composition root that
wires them (ugem.node, ugem.commands.wiring). They add no rule of their own.
"""
