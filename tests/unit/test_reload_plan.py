"""What a reload applies (`ugem.reload`): the live keys taken, every other one kept and named.

A change of routes, an SMTP limit, an [auth] key or the log level is live; a
listener, the data directory, the store or the detector's mode needs a
restart and keeps its old value in the configuration the worker runs on.
"""

from __future__ import annotations

import dataclasses

from ugem.core.config import Config
from ugem.reload import LIVE, changed, merged, plan


def test_live_keys_are_taken_and_the_others_kept_and_named() -> None:
    old = Config()
    new = dataclasses.replace(
        old,
        smtp=dataclasses.replace(old.smtp, max_recipients=7, listen="127.0.0.1:2600"),
        delivery=dataclasses.replace(old.delivery, routes={"example.org": "127.0.0.1:2526"}),
        node=dataclasses.replace(old.node, data_dir="/elsewhere"),
        anomaly=dataclasses.replace(
            old.anomaly, mode="off" if old.anomaly.mode != "off" else "shadow"
        ),
    )
    live, restart = plan(old, new)
    assert live == ["smtp.max_recipients", "delivery.routes"]
    assert restart == ["node.data_dir", "smtp.listen", "anomaly.mode"]
    runs_on = merged(old, new, live)
    assert runs_on.smtp.max_recipients == 7 and runs_on.smtp.listen == old.smtp.listen
    assert runs_on.delivery.routes == {"example.org": "127.0.0.1:2526"}
    assert runs_on.node == old.node and runs_on.anomaly == old.anomaly
    assert changed(old, old) == []


def test_what_is_live() -> None:
    assert {"smtp.max_message_size", "smtp.tls_cert", "auth.enabled", "log.level"} <= LIVE
    assert not {"smtp.listen", "smtp.listen_backlog", "smtp.data_memory", "store.url"} & LIVE
