"""The SMTP server side: a message from the first byte of a session to its commit.

`listener` accepts connections (caps, graceful stop), `session` reads the
wire (an asyncio stream protocol with our own framing), `commands` gives each verb
its meaning, `address` finds the real address behind a path, `policy`
decides who may send what (pure), `data` reads the text after DATA,
`received` writes our header, `memory_budget` bounds the text held while
received. Promises: a client hears 250 only once the intake has made the
message durable (or, for mail to the feedback address, once the complaint
sink has kept it: never relayed); every limit a stranger controls has a bound and a reply.
Failures become SMTP replies (`relay.replies`), never a traceback on the wire.
"""
