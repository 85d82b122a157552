"""Configuration: one typed, validated object for a whole node.

Every knob is a field of a section dataclass below, with its default, its
bounds (or allowed values) and one line of documentation in the field's
metadata; that table is the only source of truth (the example file, the
validation and `ugem config show` all come from it). Values come from, in
order of precedence: the environment (`UGEM_<SECTION>_<KEY>`), the TOML file
(`--config FILE` or `UGEM_CONFIG`), the defaults. `load_config` validates all
of it at start and raises `ConfigError` naming the key (or variable), the bad
value and what is allowed; unknown sections and keys are errors too, and so
is a `UGEM_` variable that names no key (the nearest one is suggested), so a
typo never silently falls back to a default.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import ipaddress
import math
import os
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ugem.core.errors import ConfigError
from ugem.core.names import canonical_domain
from ugem.core.redis_url import SENTINEL_FORM, SENTINEL_SCHEME, is_redis_url, parse_sentinel_url

KIB = 1024
MIB = 1024 * KIB
DAY = 86400.0


def knob(
    default: Any,
    doc: str,
    lo: float | None = None,
    hi: float | None = None,
    choices: tuple[str, ...] = (),
    kind: str = "",
) -> Any:
    """A config field: default, documentation, bounds or choices, special kind."""
    meta = {"doc": doc, "lo": lo, "hi": hi, "choices": choices, "kind": kind}
    if isinstance(default, list | dict):
        return field(default_factory=functools.partial(copy.copy, default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class NodeConfig:
    hostname: str = knob(
        "",
        "Name this node gives in its banner, EHLO and Received: headers "
        "(empty: the machine's fully qualified name).",
        kind="hostname",
    )
    workers: int = knob(
        1,
        "Worker processes sharing the SMTP port (bound once by the supervisor), each with "
        "its own spool "
        "(spool/queue.db, queue-w1.db, ...); worker 0 serves the node's admin HTTP for all. "
        "With more than one, a shared store (Redis) is advised.",
        lo=1,
        hi=64,
    )
    data_dir: str = knob(
        "./var",
        "Directory for the spool, the SQLite store and other state; a relative one is taken "
        "from the config file's directory (from the current directory without a file, or when "
        "set by UGEM_NODE_DATA_DIR).",
        kind="path",
    )
    public_addresses: list[str] = knob(
        [],
        "The gateway's outbound IP addresses as the internet sees them. The DNS readiness "
        "check (ugem dkim check, an application's checks) evaluates each organisation's SPF "
        "record for every one of them (empty: its SPF finding fails, saying this is not set), "
        "and the blocklist watch ([reputation]) looks each one up (empty: no watch).",
        kind="addresses",
    )


@dataclass(frozen=True)
class SmtpConfig:
    listen: str = knob(
        "127.0.0.1:2525",
        "Address and port of the SMTP listener (host:port, [v6]:port).",
        kind="hostport",
    )
    max_message_size: int = knob(
        25 * MIB,
        "Largest message accepted, in bytes (announced in EHLO SIZE).",
        lo=1 * KIB,
        hi=1024 * MIB,
    )
    max_recipients: int = knob(1000, "Most recipients in one message.", lo=100, hi=100_000)
    max_local_part: int = knob(64, "Longest local part of an address, in octets.", lo=64, hi=1024)
    max_domain: int = knob(255, "Longest domain of an address, in octets.", lo=255, hi=1024)
    max_command_line: int = knob(
        512,
        "Longest command line, CRLF included, in octets "
        "(MAIL/RCPT get room for their ESMTP parameters).",
        lo=512,
        hi=16 * KIB,
    )
    max_text_line: int = knob(
        1000, "Longest line of message text, CRLF included, in octets.", lo=1000, hi=1 * MIB
    )
    data_memory: int = knob(
        512 * MIB,
        "Bytes of message text all DATA in progress may hold in memory together; a message "
        "that finds none left gets 452 4.3.1 (try later). At least 4/3 of max_message_size.",
        lo=1 * MIB,
        hi=1024 * 1024 * MIB,
    )
    max_header_size: int = knob(
        1 * MIB,
        "Largest header section of a message, in octets; over it: 552 5.3.4 "
        "(every field is read by the mail checks; real headers are a few KiB).",
        lo=16 * KIB,
        hi=64 * MIB,
    )
    command_timeout: float = knob(
        300.0, "Seconds a client may take to send a command.", lo=1, hi=3600
    )
    data_timeout: float = knob(
        600.0, "Seconds a client may take to send a whole message after DATA.", lo=1, hi=7200
    )
    max_bad_commands: int = knob(
        10,
        "Refused commands (unknown, malformed, or answered 4xx/5xx; RCPT denials and "
        "452 too many recipients aside) before the session is closed with 421.",
        lo=1,
        hi=1000,
    )
    max_noop_commands: int = knob(
        20,
        "NOOP/RSET/HELP/VRFY and repeated HELO/EHLO commands before the session is closed "
        "with 421 (the count restarts after each accepted message).",
        lo=1,
        hi=10_000,
    )
    max_rcpt_denials: int = knob(
        20,
        "Recipients refused by the relay policy in one session before it is closed with 421.",
        lo=1,
        hi=10_000,
    )
    max_idle_session: float = knob(
        600.0,
        "Seconds a session may go on without an accepted message (from its start or its "
        "last accepted message); then 421 4.4.2.",
        lo=1,
        hi=86400,
    )
    max_connections: int = knob(
        2000, "Concurrent SMTP sessions in total; over it: 421 4.7.0.", lo=1, hi=1_000_000
    )
    listen_backlog: int = knob(
        1024,
        "Connections the kernel queues before the listener accepts them (the system's "
        "net.core.somaxconn caps it); a full queue leaves a client waiting for a banner.",
        lo=16,
        hi=65535,
    )
    max_connections_per_ip: int = knob(
        100,
        "Concurrent SMTP sessions from one client address; over it: 421 4.7.0.",
        lo=1,
        hi=100_000,
    )
    max_connections_per_stranger: int = knob(
        20,
        "Concurrent SMTP sessions from one address that is not a connected server "
        "(never more than max_connections_per_ip); over it: 421 4.7.0.",
        lo=1,
        hi=100_000,
    )
    reserved_share: float = knob(
        0.25,
        "Share of max_connections kept for connected servers: other clients get 421 4.7.0 "
        "once fewer than this many slots are free.",
        lo=0,
        hi=0.9,
    )
    tls_cert: str = knob(
        "", "PEM certificate chain for STARTTLS (empty: no STARTTLS).", kind="path"
    )
    tls_key: str = knob("", "PEM private key for STARTTLS.", kind="path")
    tls_handshake_timeout: float = knob(
        10.0, "Seconds a TLS handshake may take before the session is dropped.", lo=0.1, hi=300
    )
    normalize_line_endings: bool = knob(
        False,
        "Rewrite bare CR or LF in message text to CRLF "
        "instead of refusing the message with 550 5.6.0.",
    )
    max_queue_backlog: int = knob(
        200_000,
        "Messages waiting in the queue above which new mail gets 451 4.3.2 (backpressure).",
        lo=100,
        hi=100_000_000,
    )


@dataclass(frozen=True)
class AdminConfig:
    listen: str = knob(
        "127.0.0.1:8025",
        "Address and port of the admin HTTP listener (health, metrics, API).",
        kind="hostport",
    )
    enabled: bool = knob(True, "Run the admin HTTP listener.")
    postmaster: str = knob(
        "",
        "Sender of the notices mailed to organisations (empty: postmaster@<node hostname>).",
        kind="mailbox",
    )
    operators_address: str = knob(
        "", "Where alerts to the operators go, e.g. on a suspension (empty: none).", kind="mailbox"
    )
    templates_dir: str = knob(
        "",
        "Directory of notice templates <name>.<kk|ru|en>.txt overriding the shipped ones "
        "(empty: the shipped ones).",
        kind="path",
    )
    max_body_size: int = knob(
        1 * MIB,
        "Largest admin request body, in bytes; over it: 413, before the body is read.",
        lo=1 * KIB,
        hi=64 * MIB,
    )
    header_timeout: float = knob(
        10.0,
        "Seconds a client may take to send a request's head (from connecting, or from the "
        "previous answer: an idle kept-alive connection closes then too).",
        lo=0.1,
        hi=300,
    )
    body_timeout: float = knob(
        30.0, "Seconds a client may take to send a request's body after its head.", lo=0.1, hi=3600
    )
    console_session: float = knob(
        8 * 3600.0,
        "Seconds a sign-in to the web console (/ui/) lasts; then the operator signs in again.",
        lo=60,
        hi=7 * 86400,
    )
    max_connections: int = knob(
        100,
        "Concurrent admin HTTP connections of a worker (apart from SMTP's); over it: 503, closed.",
        lo=1,
        hi=10_000,
    )


@dataclass(frozen=True)
class StoreConfig:
    url: str = knob(
        "",
        "Registry store: sqlite:///path, redis://host:port/db or "
        "redis+sentinel://host:port,host:port/mastername/db (empty: SQLite in data_dir).",
        kind="storeurl",
    )
    max_stale: float = knob(
        6 * 3600.0,
        "Seconds a node relays on its last copy of the registry (kept in data_dir) while "
        "the store is unreachable or refused (empty, another generation, older); beyond "
        "it /readyz answers 503 and every MAIL gets 451 4.3.0 until the store is back.",
        lo=60,
        hi=7 * DAY,
    )
    relay_timeout: float = knob(
        0.5,
        "Seconds an SMTP command waits for the store before the registry's copy answers; "
        "the store is then taken as down, and only a background probe (every 2 s) asks it.",
        lo=0.05,
        hi=5,
    )


@dataclass(frozen=True)
class SpoolConfig:
    max_size_mb: int = knob(
        0,
        "Cap on the spool database, in MiB (0: no cap but the disk); "
        "when full, new mail gets 452 4.3.1.",
        lo=0,
        hi=10_000_000,
    )
    max_batch: int = knob(
        512, "Most messages made durable by one fsync (group commit).", lo=1, hi=100_000
    )
    reserve_mb: int = knob(
        8,
        "Disk space kept in queue.db.reserve and given up when the disk fills, so deliveries "
        "can still be recorded (never sent twice); while it is spent new mail gets 452 4.3.1 "
        "and /readyz answers 503 (0: no reserve).",
        lo=0,
        hi=4096,
    )


@dataclass(frozen=True)
class DeliveryConfig:
    routes: dict[str, str] = knob(
        {},
        "Next hop per domain, overriding MX and connection "
        'servers: {"example.org" = "127.0.0.1:2526"}.',
        kind="routes",
    )
    dns_servers: list[str] = knob(
        [], "Resolvers for MX/A lookups as ip or ip:port (empty: the system's).", kind="dnsservers"
    )
    dns_timeout: float = knob(5.0, "Seconds a DNS lookup may take.", lo=0.1, hi=60)
    smtp_port: int = knob(
        25, "Port of next hops found by MX or by connection server address.", lo=1, hi=65535
    )
    helo_name: str = knob(
        "", "Name sent in EHLO to next hops (empty: node.hostname).", kind="hostname"
    )
    connect_timeout: float = knob(30.0, "Seconds to connect to a next hop.", lo=0.1, hi=600)
    command_timeout: float = knob(300.0, "Seconds to wait for a next hop's reply.", lo=0.1, hi=3600)
    concurrency_per_destination: int = knob(
        20, "Parallel SMTP sessions to one next hop.", lo=1, hi=1000
    )
    concurrency_total: int = knob(
        500, "Parallel outbound SMTP sessions in total.", lo=1, hi=100_000
    )
    messages_per_connection: int = knob(
        100, "Messages sent over one outbound session before it is closed.", lo=1, hi=100_000
    )
    idle_timeout: float = knob(
        5.0, "Seconds an idle outbound session is kept for reuse.", lo=0, hi=600
    )
    starttls: str = knob(
        "opportunistic",
        "Outbound STARTTLS: opportunistic (when offered, unverified) or never.",
        choices=("opportunistic", "never"),
    )
    tls_required_domains: list[str] = knob(
        [],
        "Recipient domains whose mail goes only over STARTTLS with a certificate that "
        "verifies for the next hop's name (the MX host, or the route's host); when a next "
        "hop cannot do that, nothing is sent and the mail waits (deferred 4.7.x, retried). "
        '"example.org" matches that domain, ".example.org" its subdomains.',
        kind="tlsdomains",
    )
    tls_ca_file: str = knob(
        "",
        "PEM file of the CA certificates that next hops of tls_required_domains, MX hosts "
        "under an MTA-STS policy and MTA-STS policy servers are verified against (empty: "
        "the system's CA bundle).",
        kind="path",
    )
    mta_sts: str = knob(
        "enforce",
        "MTA-STS (RFC 8461) for destinations found by MX: the policy a domain publishes "
        "(TXT _mta-sts.<domain>, https://mta-sts.<domain>/.well-known/mta-sts.txt on port "
        "443, cached for its max_age). enforce: apply policies as published (mode enforce: "
        "only MX hosts the policy names, over STARTTLS verified for the MX host name, else "
        "nothing is sent and the mail waits, deferred 4.7.x; mode testing: delivered as "
        "usual, what would have failed logged at WARNING and counted); testing-only: treat "
        "every policy as testing (never blocks); off: no lookups. Configured routes and "
        "connections' servers are not subject to MTA-STS.",
        choices=("enforce", "testing-only", "off"),
    )
    min_backoff: float = knob(
        300.0, "Seconds before the first retry of deferred mail.", lo=1, hi=DAY
    )
    max_backoff: float = knob(
        4000.0, "Longest wait between retries, in seconds (at least min_backoff).", lo=1, hi=7 * DAY
    )
    queue_lifetime: float = knob(
        5 * DAY, "Seconds deferred mail is retried before it bounces.", lo=60, hi=60 * DAY
    )
    bounce_lifetime: float = knob(
        5 * DAY,
        "Seconds an undeliverable bounce (DSN) is retried before it is dropped.",
        lo=60,
        hi=60 * DAY,
    )
    scan_interval: float = knob(
        1.0, "Seconds between scans of the queue for mail due a retry.", lo=0.05, hi=600
    )
    rate_limit_delay: float = knob(
        30.0,
        "Seconds a destination (a next hop's route) is left alone after it answers a rate-limit "
        "reply (421/450/451 classed rate-limited, e.g. 421 4.7.28), then the least spacing "
        "between attempts to it; doubled by each further such reply, undone one step by each "
        "attempt that delivers. The reply also halves its concurrency (relay.deliver.backoff).",
        lo=1,
        hi=3600,
    )
    rate_limit_max_delay: float = knob(
        900.0,
        "Longest spacing between attempts to a rate-limited destination, in seconds "
        "(never below rate_limit_delay).",
        lo=1,
        hi=DAY,
    )
    rate_limit_recovery: int = knob(
        10,
        "Attempts that deliver to a destination whose concurrency a rate-limit reply cut, "
        "after which it gets one session back (up to concurrency_per_destination).",
        lo=1,
        hi=10_000,
    )


@dataclass(frozen=True)
class DkimConfig:
    enabled: bool = knob(
        True,
        "Sign outbound mail (from connected servers) with DKIM when its domain, "
        "or gateway_domain, has an active key.",
    )
    key_dir: str = knob(
        "",
        "Directory of DKIM keys, <domain>/<selector>.rsa.pem etc. (empty: <data_dir>/dkim).",
        kind="path",
    )
    gateway_domain: str = knob(
        "",
        "Domain whose key signs mail of domains without a key of their own (empty: none).",
        kind="hostname",
    )
    sign_processes: int = knob(
        1,
        "Processes per worker that sign beside its event loop, so dkimpy's Python steps run "
        "on another core (0: sign in a thread of the worker, taking turns with it).",
        lo=0,
        hi=16,
    )
    sign_timeout: float = knob(
        30.0,
        "Seconds a signing process may take over one message before it is killed and "
        "started again; the message is queued unsigned, logged at ERROR.",
        lo=1,
        hi=600,
    )


@dataclass(frozen=True)
class AuthConfig:
    enabled: bool = knob(
        True,
        "Check mail from the internet to connected domains (SPF, DKIM, DMARC) and add an "
        "Authentication-Results: header with the results; such headers from outside that "
        "claim our authserv_id are removed. Mail from connected servers is not checked.",
    )
    authserv_id: str = knob(
        "",
        "Name of this gateway in Authentication-Results: headers (empty: node.hostname).",
        kind="hostname",
    )
    spf_fail: str = knob(
        "tag",
        "What an SPF fail does. reject: 550 5.7.23, unless DMARC passes through an aligned "
        "DKIM signature (RFC 7489 10.1); tag: the result is only recorded in the header and "
        "DMARC decides.",
        choices=("reject", "tag"),
    )
    dmarc_reject: str = knob(
        "reject",
        "What a DMARC failure under the sender domain's p=reject does (after pct=). reject: "
        "550 5.7.1 (so are messages with several From: fields or addresses); quarantine-tag: "
        "delivered with the header X-UGEM-Quarantine: dmarc; tag: only the Authentication-"
        "Results: header. A failure under p=quarantine gets X-UGEM-Quarantine unless tag.",
        choices=("reject", "quarantine-tag", "tag"),
    )
    max_dkim_signatures: int = knob(
        3,
        "DKIM signatures verified per message, top first; further ones are ignored "
        "(0: no DKIM verification).",
        lo=0,
        hi=20,
    )
    timeout: float = knob(
        20.0,
        "Seconds all checks of one message may take together (RFC 7208 4.6.4 asks at least "
        "20 for SPF); what is not done by then is temperror. Each DNS lookup is also bounded "
        "by delivery.dns_timeout.",
        lo=0.5,
        hi=120,
    )


@dataclass(frozen=True)
class AnomalyConfig:
    trace_file: str = knob(
        "", "Write relay events as a JSONL traffic trace to this file (empty: off).", kind="path"
    )
    mode: str = knob(
        "shadow",
        "What the anomaly detector does on abnormal traffic from a connected server. "
        "enforce: suspend it, open an incident, audit, notify its owner and the operators; "
        "shadow: only open an incident, log, audit, count and alert the operators about what "
        "it would have suspended (watch a new detector before it acts); off: do not run the "
        "detector. Overrides per connection: /v1/overrides.",
        choices=("enforce", "shadow", "off"),
    )
    shared_traffic: str = knob(
        "auto",
        "Whether the detector judges the traffic of every worker and node (through a shared "
        "traffic log beside the store: traffic.db, or a Redis stream) or only its own process's. "
        "auto: shared when node.workers > 1 or the store is Redis; on; off.",
        choices=("auto", "on", "off"),
    )


# The public DNS blocklists (DNSBLs) of IP addresses the gateway watches its own outbound
# addresses on by default (`[reputation] dnsbl_zones`). Each is asked for A records of
# <reversed address>.<zone> (RFC 5782): NXDOMAIN is "not listed", an answer in 127.0.0.0/8
# a listing (TXT at the same name says why), an answer in 127.255.255.0/24, 127.0.0.1 or
# outside 127/8 an error of the query, never a listing (relay.reputation.dnsbl). What each
# zone's answers mean, as its operator documents them:
#   zen.spamhaus.org         Spamhaus ZEN (SBL, CSS, XBL, PBL in one zone): 127.0.0.2 SBL
#                            (spam sources and services), .3 SBL CSS (snowshoe spam), .4-.7
#                            XBL (exploited hosts: bots, proxies), .9 DROP, .10/.11 PBL (end-
#                            user space that should not send mail directly); errors:
#                            127.255.255.252 typo in the zone name, .254 query through a
#                            public/open resolver (or one with generic rDNS: ask through a
#                            resolver of your own, or Spamhaus DQS), .255 excessive queries.
#   b.barracudacentral.org   Barracuda Reputation Block List: 127.0.0.2 listed; free, but the
#                            querying resolver's address must be registered at
#                            barracudacentral.org, else its queries go unanswered (unknown).
#   bl.spamcop.net           SpamCop Blocking List, from recipients' reports and spam traps:
#                            127.0.0.2 listed; a listing expires 24 h after the last report.
#   psbl.surriel.com         Passive Spam Block List, from spam traps: 127.0.0.2 listed
#                            (one code, no categories); anyone may remove an address.
#   bl.mailspike.net         Mailspike's blocking zone: 127.0.0.2 (part of a spam wave, the
#                            z.mailspike.net list) or 127.0.0.10, .11, .12 (reputation L5, L4,
#                            L3: worst, very bad, bad); free under 100,000 queries a day.
# Left out on purpose, though older lists name them: dnsbl.sorbs.net (SORBS, decommissioned
# by Proofpoint on 2024-06-05, its zones emptied) and ix.dnsbl.manitu.net (NiX Spam, shut
# down on 2025-01-16; its operators ask that it no longer be queried). A dead zone answers
# nothing useful at best, and a lapsed domain may be taken over and answer "listed" for
# every address.
DEFAULT_DNSBL_ZONES = [
    "zen.spamhaus.org",
    "b.barracudacentral.org",
    "bl.spamcop.net",
    "psbl.surriel.com",
    "bl.mailspike.net",
]


@dataclass(frozen=True)
class ReputationConfig:
    dnsbl_zones: list[str] = knob(
        DEFAULT_DNSBL_ZONES,
        "DNS blocklists (DNSBL zones) on which every address of node.public_addresses is "
        "checked, every interval seconds, by `ugem serve` and `ugem reputation check` "
        "(empty: no checks). The default: major public lists, each described in "
        "ugem/core/config.py. Spamhaus answers queries that come through a public resolver "
        "with an error code (state unusable): resolve through one of your own "
        "(delivery.dns_servers).",
        kind="zones",
    )
    interval: float = knob(
        3600.0,
        "Seconds between two checks of the gateway's addresses on the blocklists by a "
        "running node (worker 0); the first is made at start.",
        lo=60,
        hi=DAY,
    )
    timeout: float = knob(
        5.0,
        "Seconds one blocklist lookup may take (through delivery.dns_servers); no answer in "
        "time leaves that address's state on that list unknown.",
        lo=0.1,
        hi=60,
    )
    reply_patterns: str = knob(
        "",
        "A TOML file of patterns that classify remote delivery replies, replacing the "
        "packaged ugem/core/reply_patterns.toml (empty: the packaged table).",
        kind="path",
    )
    fbl_address: str = knob(
        "",
        "A local address of the gateway where feedback-loop complaints (ARF, RFC 5965) "
        "and abuse reports are received and traced to their connection (empty: none).",
        kind="mailbox",
    )
    incident_window: float = knob(
        6 * 3600.0,
        "Seconds of delivery history a gateway incident (a listing of one of its addresses, "
        "a burst of blocklisted replies) looks back on to name the connections whose mail "
        "left the gateway, ranked by their share of the rejections and of the abnormal-"
        "traffic evidence (ugem.core.services.gateway).",
        lo=3600,
        hi=2 * DAY,
    )
    burst_replies: int = knob(
        10,
        "Replies refusing the gateway's mail as blocklisted (e.g. 554 5.7.1 ... blocked "
        "using zen.spamhaus.org) within burst_window that open a gateway incident, before "
        "the DNS blocklists show anything (never fewer than burst_domains).",
        lo=1,
        hi=100_000,
    )
    burst_domains: int = knob(
        3,
        "Distinct destination (recipient) domains those replies must come from, so one "
        "destination's own blocklist does not make a burst.",
        lo=1,
        hi=1000,
    )
    burst_window: float = knob(
        600.0, "Seconds within which the burst's replies are counted.", lo=60, hi=DAY
    )
    burst_quiet: float = knob(
        3600.0,
        "Seconds without a blocklisted reply after which a burst is a new episode: until "
        "then (or until its incident is closed) further replies open no other incident.",
        lo=60,
        hi=7 * DAY,
    )


@dataclass(frozen=True)
class LogConfig:
    level: str = knob("info", "Lowest level logged.", choices=("debug", "info", "warning", "error"))
    format: str = knob(
        "json", "json: one JSON object a line; text: key=value.", choices=("json", "text")
    )
    mail_log: str = knob(
        "on",
        "The mail log: one INFO line per message event (accepted, each recipient's delivery "
        "attempt, expired, held, released, deleted, refused at SMTP) on the logger "
        "ugem.maillog, written when level is info or debug; off: none (the message index "
        "is kept all the same).",
        choices=("on", "off"),
    )
    index_days: int = knob(
        30,
        "Days the message index (<data_dir>/maillog.db, searched by `ugem log search` and "
        "GET /v1/messages) keeps each message's history; pruned daily; 0: no index.",
        lo=0,
        hi=3650,
    )
    index_max_mb: int = knob(
        4096,
        "Largest size of the message index in MiB: past it the oldest history goes first, "
        "whatever index_days says.",
        lo=16,
        hi=1024 * 1024,
    )


@dataclass(frozen=True)
class Config:
    node: NodeConfig = field(default_factory=NodeConfig)
    smtp: SmtpConfig = field(default_factory=SmtpConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    spool: SpoolConfig = field(default_factory=SpoolConfig)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    dkim: DkimConfig = field(default_factory=DkimConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    anomaly: AnomalyConfig = field(default_factory=AnomalyConfig)
    reputation: ReputationConfig = field(default_factory=ReputationConfig)
    log: LogConfig = field(default_factory=LogConfig)

    # Derived values, so callers never repeat the defaulting rules.
    @property
    def hostname(self) -> str:
        return self.node.hostname or socket.getfqdn()

    @property
    def helo_name(self) -> str:
        return self.delivery.helo_name or self.hostname

    @property
    def postmaster(self) -> str:
        return self.admin.postmaster or f"postmaster@{self.hostname}"

    @property
    def data_path(self) -> Path:
        return Path(self.node.data_dir)

    @property
    def store_url(self) -> str:
        """sqlite:/// + path (SQLAlchemy's form: a fourth slash makes it absolute)."""
        return self.store.url or f"sqlite:///{(self.data_path / 'registry.db').resolve()}"

    @property
    def shares_traffic(self) -> bool:
        """Whether the detector reads the shared traffic log (`[anomaly] shared_traffic`)."""
        choice = self.anomaly.shared_traffic
        if choice != "auto":
            return choice == "on"
        return self.node.workers > 1 or is_redis_url(self.store_url)


SECTIONS: dict[str, type[Any]] = {
    f.name: type(getattr(Config(), f.name)) for f in dataclasses.fields(Config)
}


def parse_hostport(text: str, listen: bool = False) -> tuple[str, int]:
    """'host:port' or '[v6]:port' to (host, port); ValueError if it is neither.

    A listener may name port 0: the system picks a free port (tests do this).
    """
    host, sep, port = text.rpartition(":")
    lowest = 0 if listen else 1
    digits = port.isascii() and port.isdigit()  # "²" and "٣" are digits to str.isdigit()
    if not sep or not host or not digits or not lowest <= int(port) < 65536:
        raise ValueError(f"expected host:port with a port from {lowest} to 65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def _num(x: float | None) -> str:
    return "any" if x is None else str(int(x)) if x == int(x) else str(x)


def _check_kind(kind: str, value: Any) -> Any:
    if kind == "hostport":
        parse_hostport(value, listen=True)
    elif kind == "routes":
        if not isinstance(value, dict):
            raise ValueError('expected a table of domain = "host:port"')
        out = {}
        for dom, hop in value.items():
            if not isinstance(hop, str):
                raise ValueError(f'next hop of {dom!r} must be a "host:port" string')
            parse_hostport(hop)
            out[canonical_domain(dom)] = hop
        return out
    elif kind == "tlsdomains":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError('expected a list of domains like "example.org" or ".example.org"')
        return [
            ("." if v.strip().startswith(".") else "") + canonical_domain(v.strip(" ."))
            for v in value
        ]
    elif kind == "dnsservers":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError('expected a list of "ip" or "ip:port" strings')
    elif kind == "addresses":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError('expected a list of IP addresses like "203.0.113.9"')
        return [str(ipaddress.ip_address(v.strip())) for v in value]
    elif kind == "zones":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError('expected a list of DNSBL zone names like "zen.spamhaus.org"')
        return list(dict.fromkeys(canonical_domain(v) for v in value))
    elif kind == "mailbox" and value:
        local, at, domain = value.rpartition("@")
        if not at or not local or any(c in local for c in ' <>"') or "." not in domain:
            raise ValueError("expected an e-mail address like postmaster@example.kz")
        return f"{local}@{canonical_domain(domain)}"
    elif kind == "storeurl" and value:
        _check_store_url(value)
    return value


def _check_store_url(value: str) -> None:
    """ValueError unless `value` is sqlite:///path, redis://... or a valid redis+sentinel://."""
    if value.startswith(SENTINEL_SCHEME):
        try:
            parse_sentinel_url(value)
        except ConfigError as exc:
            raise ValueError(exc.allowed) from None
    elif not value.startswith(("sqlite:///", "redis://")):
        raise ValueError(f"expected sqlite:///path or redis://host:port/db, or {SENTINEL_FORM}")


def _coerce(f: dataclasses.Field[Any], value: Any) -> Any:
    """Validate one value against its field; ValueError says what is allowed."""
    meta, default = f.metadata, f.default if f.default is not dataclasses.MISSING else None
    if f.default is dataclasses.MISSING and f.default_factory is not dataclasses.MISSING:
        default = f.default_factory()
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError("expected true or false")
    elif isinstance(default, int | float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("expected a number")
        if not math.isfinite(value):
            raise ValueError("expected a finite number")
        if isinstance(default, int) and not isinstance(default, bool) and value != int(value):
            raise ValueError("expected a whole number")
        value = type(default)(value)
        lo, hi = meta["lo"], meta["hi"]
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ValueError(f"expected a value from {_num(lo)} to {_num(hi)}")
    elif isinstance(default, str) and not isinstance(value, str):
        raise ValueError("expected a string")
    if meta["choices"] and value not in meta["choices"]:
        raise ValueError("expected one of " + ", ".join(meta["choices"]))
    return _check_kind(meta["kind"], value)


def _parse_env(f: dataclasses.Field[Any], raw: str) -> Any:
    """An environment variable's text as the field's type (TOML value syntax or plain)."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        pass
    if f.type in ("bool",):
        low = raw.strip().lower()
        if low in ("1", "yes", "on", "true"):
            return True
        if low in ("0", "no", "off", "false"):
            return False
    if f.type.startswith("list"):
        return [item.strip() for item in raw.split(",") if item.strip()]
    if f.type.startswith("dict"):
        pairs = [p.split("=", 1) for p in raw.split(",") if p.strip()]
        return {k.strip(): v.strip() for k, v in pairs} if all(len(p) == 2 for p in pairs) else raw
    return raw


OTHER_ENV = frozenset({"UGEM_CONFIG", "UGEM_SUPERVISOR_PID"})  # UGEM_ variables not knobs
TEST_ENV = "UGEM_TEST_"  # the test harness's own variables


def env_name(section: str, key: str) -> str:
    return f"UGEM_{section}_{key}".upper()


def load_config(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Config:
    """Read, merge and validate; raise ConfigError naming the key on any fault."""
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    if path:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(
                "--config", str(path), f"the file cannot be read: {exc.strerror}"
            ) from exc
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError("--config", str(path), f"expected a TOML file: {exc}") from exc
    for name in raw:
        if name not in SECTIONS:
            raise ConfigError(name, raw[name], "allowed sections: " + ", ".join(SECTIONS))
    _check_env_names(env)
    base = Path(path).resolve().parent if path else None  # relative paths of a file: from it
    sections = {
        name: _load_section(name, cls, raw.get(name, {}), env, base)
        for name, cls in SECTIONS.items()
    }
    config = Config(**sections)
    _check_relations(config)
    return config


def _check_env_names(env: Mapping[str, str]) -> None:
    """A UGEM_ variable that names no key is a typo (UGEM_SMTP_LISEN): ConfigError naming
    the nearest key, as an unknown key in the file is. Not knobs: OTHER_ENV, and the
    UGEM_TEST_ variables of the test harness."""
    known = {env_name(s, f.name) for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)}
    for var in env:
        if not var.startswith("UGEM_") or var in known or var in OTHER_ENV:
            continue
        if var.startswith(TEST_ENV):
            continue
        near = difflib.get_close_matches(var, sorted(known | OTHER_ENV), n=1, cutoff=0.6)
        hint = f"did you mean {near[0]}?" if near else "no such key (UGEM_<SECTION>_<KEY>)"
        raise ConfigError(var, env[var], f"unknown variable; {hint}")


def _check_relations(config: Config) -> None:
    """Knobs whose bounds depend on another knob."""
    smtp = config.smtp
    stuffed = smtp.max_message_size + smtp.max_message_size // 3 + 5  # dot-stuffed, worst case
    if smtp.data_memory < stuffed:
        raise ConfigError(
            "smtp.data_memory",
            smtp.data_memory,
            f"at least {stuffed} (4/3 of smtp.max_message_size, so one message fits)",
        )
    delivery = config.delivery
    if delivery.max_backoff < delivery.min_backoff:
        # else every retry would wait max_backoff: a longer min_backoff would be ignored
        raise ConfigError(
            "delivery.max_backoff",
            delivery.max_backoff,
            f"at least delivery.min_backoff ({delivery.min_backoff:g})",
        )


def _load_section(
    name: str, cls: type[Any], table: Any, env: Mapping[str, str], base: Path | None = None
) -> Any:
    """The section's knobs from `table` (the file's) and `env`; a relative path knob from
    the file or its default is taken from the file's directory `base` (so `ugem --config
    /etc/ugem/ugem.toml ...` finds the node's data from any directory); from the
    environment, from the current directory."""
    if not isinstance(table, dict):
        raise ConfigError(name, table, "expected a [section] table")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in table:
        if key not in fields:
            allowed = ", ".join(fields) or "none yet"
            raise ConfigError(f"{name}.{key}", table[key], f"unknown key; allowed keys: {allowed}")
    values = {}
    for key, f in fields.items():
        var = env_name(name, key)
        if var in env:
            where, value = var, _parse_env(f, env[var])
        elif key in table:
            where, value = f"{name}.{key}", _from_file(f, table[key], base)
        elif base is not None and f.metadata.get("kind") == "path" and f.default:
            where, value = f"{name}.{key}", _from_file(f, f.default, base)
        else:
            continue
        try:
            values[key] = _coerce(f, value)
        except ValueError as exc:
            raise ConfigError(where, value, str(exc)) from None
    return cls(**values)


def _from_file(f: dataclasses.Field[Any], value: Any, base: Path | None) -> Any:
    """A path knob's relative value, from the config file's directory `base`."""
    if base is None or f.metadata.get("kind") != "path" or not isinstance(value, str):
        return value
    return str(base / value) if value and not Path(value).is_absolute() else value


def describe() -> list[tuple[str, str, Any, str]]:
    """(section, key, default, documentation with bounds) for every knob."""
    rows = []
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            default = getattr(cls(), f.name)
            meta = f.metadata
            doc = meta["doc"]
            if meta["lo"] is not None:
                doc += f" Range {_num(meta['lo'])}..{_num(meta['hi'])}."
            if meta["choices"]:
                doc += " One of: " + ", ".join(meta["choices"]) + "."
            rows.append((section, f.name, default, doc))
    return rows
