"""The gateway's own mail signed: DSNs and notices, which never pass SMTP accept.

`GatewaySigner` DKIM-signs the mail the gateway writes itself: DSNs
(relay.queue.bounce) and notices (`ugem.adapters.outbox`), which reach the
spool without passing SMTP accept. It signs with the key of its own domains
(the postmaster's, the node's host name) when one has a key, else with
`[dkim] gateway_domain`'s (`relay.deliver.dkim_sign.DkimSigner`). A signing
failure queues the message unsigned and logs `dkim_sign_failed` at ERROR with
its queue id, as at accept; `sign` never raises.
"""

from __future__ import annotations

import dataclasses

from relay.deliver.dkim_sign import DkimSigner, signer_from_config
from relay.queue.message import QueuedMessage
from ugem.core.clock import Clock
from ugem.core.config import Config


@dataclasses.dataclass(frozen=True)
class GatewaySigner:
    """Signs the gateway's own mail; `domains` are its own (the From: domains it writes)."""

    dkim: DkimSigner
    domains: tuple[str, ...]

    async def sign(self, msg: QueuedMessage) -> QueuedMessage:
        """`msg` with DKIM-Signature fields on top (as it was when there is no key or
        signing failed); the signing runs in a worker thread."""
        if msg.data is None:
            return msg
        data = await self.dkim.outgoing_async(msg.data, self.domains, self.domains[0], msg.id)
        return dataclasses.replace(msg, data=data, size=len(data))


def gateway_signer(config: Config, clock: Clock) -> GatewaySigner | None:
    """The signer of a node's own mail, None when `[dkim] enabled` is false."""
    dkim = signer_from_config(config, clock)
    if dkim is None:
        return None
    own = (config.postmaster.rpartition("@")[2].lower(), config.hostname.lower().rstrip("."))
    return GatewaySigner(dkim, tuple(dict.fromkeys(own)))
