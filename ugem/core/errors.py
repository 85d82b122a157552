"""The one exception tree of the project.

Every error the project raises on purpose derives from `UgemError` and is
defined here (PathError alone is defined where its reply type lives, see
below), so callers handle a small, closed set. Lower-level errors (sqlite3,
redis, OSError, aiosmtplib, ssl, dnspython, dkimpy, httpx, ...) are caught at
the boundary of the module that calls them and re-raised as one of these with
``raise X(...) from exc``, or turned there into an SMTP reply or a delivery
outcome (the table below). This module imports the standard library only.
loadtest/ stands apart with its own small tree (loadtest.errors). The tree,
and where each error is raised::

    UgemError                  as such: admin.server (the admin socket cannot listen or
    │                          start), relay.accept.listener (the SMTP socket cannot
    │                          listen), ugem.core.services.notices (no outbox),
    │                          ugem.core.drain_state (a drain request that cannot be
    │                          read or written: the node cannot tell if it may take mail),
    │                          admin.ui.i18n (the console's catalogues differ: a bug)
    ├── ConfigError            bad configuration: names the key, the value, what is allowed
    │                          (ugem.core.config, .notices, .dkim_keys, .store, .redis_url
    │                          (a malformed redis+sentinel:// store.url), .reply_class,
    │                          .services.reputation; relay.tls, relay.dns,
    │                          relay.inbound.checks, relay.deliver.dkim_sign, anomaly.enforce)
    ├── UsageError             bad CLI or API input: names the argument and what is allowed
    │                          (ugem.core.model, .services, ugem.commands, relay.queue.spool,
    │                          relay.readiness, anomaly.trace_reader, .protocol, .simulate,
    │                          .evaluate)
    ├── NotFoundError          an id that does not exist (ugem.core.services, .registry)
    ├── ConflictError          a request that contradicts the current state (ugem.core.services)
    ├── ForbiddenError         the caller's role does not allow it: names the role needed
    │                          (ugem.core.services.mailqueue)
    ├── StoreError             the registry's store failed (SQLite or Redis: ugem.core.store),
    │   │                      or a change that needs it was asked while it is down
    │   │                      (ugem.core.registry_watch)
    │   └── StoreRefused       the store answers, but what it holds may not replace the
    │                          registry's copy: empty, of another generation, or older
    │                          (ugem.core.registry; ugem.core.store_trust says why)
    ├── SpoolError             the spool could not make a message durable (relay.queue.spool*)
    │   ├── SpoolFullError     no space left (disk full or spool size cap): 452 4.3.1
    │   └── SpoolCorruptError  a record failed its checksum; it is quarantined
    ├── TransferError          a message could not be handed to another node (a drain):
    │                          refused by it or not reached; `scope` says whether it is
    │                          this message's fault or the receiver's (ugem.core.transfer_client)
    ├── DnsTrouble             a DNS lookup got no usable answer (relay.dns): temperror for
    │                          the inbound checks, a failed readiness finding, an unknown
    │                          blocklist state (relay.reputation), never permanent
    ├── SigningError           outbound mail could not be DKIM-signed (relay.deliver.dkim_sign);
    │                          `DkimSigner.outgoing` then sends it unsigned
    ├── PathError              a MAIL FROM or RCPT TO path refused, with the Reply to send
    │                          (relay.accept.address). Defined there, not here: its `reply` is
    │                          a relay.replies.Reply, which this floor cannot import
    └── DeliveryError          an outbound attempt failed; carries the failure class
        ├── RouteFailure       a domain could not be routed: code, status, text; 5xx bounces,
        │                      4xx defers (relay.deliver.routing, relay.deliver.pool)
        ├── StsError           no MTA-STS policy could be had: `result` failed or invalid
        │                      (relay.deliver.mta_sts, caught there; `parse_policy` raises it)
        └── TlsRequired        a hop cannot give the verified TLS a destination requires: a
                               local 451 4.7.4 or 4.7.5 (relay.deliver.requirements,
                               relay.deliver.pool), read by relay.deliver.trouble as a reply

Control-flow exceptions private to a module are not part of the tree: they
never leave their module. `_TlsFailed` (relay.deliver.pool: a failed
opportunistic handshake, retried in plain text), `_Stale` (relay.deliver.transaction:
a reused session found closed before anything was sent), `_Unusable`
(relay.queue.spool_recovery), `_KeyProblem` (relay.inbound.dkim_verify: raised by
its key lookup inside dkimpy's verify_sig, caught by the same module),
`_TooLarge` (admin.body_limit) and `RecordError` (relay.inbound.dmarc, imported
by its tests only). A route none of whose hops gives a session is a value the
pool returns (`relay.deliver.pool.Unreachable`), not an exception. One crosses
a module but not its package: `EndSession` (raised in relay.accept.commands and
relay.accept.session, caught by relay.accept.session: close the session after
this Reply); like PathError it carries a relay.replies.Reply.

Foreign exceptions at the boundary, by the module where they enter, and what
each becomes::

    ugem.core.store.sqlite, ugem.core.store.traffic
        sqlite3.Error; OSError opening the file          StoreError
    ugem.core.store.redis_gate (every call of the Redis store and traffic log)
        redis.exceptions.RedisError                      StoreError
    ugem.core.store.redis
        ValueError of the store URL                      ConfigError store.url
    ugem.core.store.codec, .sqlite, .redis
        ValueError (json), KeyError, TypeError of a      StoreError ("... is damaged")
        stored document or audit record
    ugem.core.store.redis (`server_config`), ugem.core.store.persistence
        redis.exceptions.ResponseError of CONFIG GET     None: an INFO line, never a failure
    ugem.core.registry_copy (the registry's copy on disk)
        OSError writing it (temp file, fsync, rename)    StoreError (logged; the view stands)
        OSError, UnicodeDecodeError, ValueError (json),  StoreError ("... is damaged"): the
        KeyError, TypeError reading it                   copy is not used, never taken as empty
    ugem.core.config
        OSError, tomllib.TOMLDecodeError,                ConfigError --config
        UnicodeDecodeError of the file
        ValueError of a value                            ConfigError naming the key
    ugem.core.notices
        OSError, UnicodeDecodeError of a template;       ConfigError admin.templates_dir
        KeyError, ValueError of its placeholders
    ugem.core.dkim_keys
        OSError, ValueError, TypeError of a key file     ConfigError dkim.key_dir
    ugem.core.reply_class
        OSError, tomllib.TOMLDecodeError, re.error of    ConfigError naming the file,
        a reply-patterns file                            the rule and the field; as
                                                         `configured_patterns`: ConfigError
                                                         reputation.reply_patterns
    ugem.core.names
        idna.IDNAError                                   ValueError (the caller's UsageError,
                                                         RouteFailure, ...)
    ugem.core.feedback
        any exception of the email parser reading a      a report of format unparsed, with
        complaint (RecursionError of a deep nesting)     the exception's name as the problem
    ugem.core.services.complaints
        ValueError (json), KeyError, TypeError of a      StoreError ("... is damaged")
        stored complaint
    ugem.core.trace_writer
        OSError writing the JSONL traffic trace          logged (trace_write_failed)
    relay.queue.spool_sql (`_spool_error`, for spool, spool_writer, spool_recovery)
        sqlite3.Error, OSError: SQLITE_FULL, ENOSPC,     SpoolFullError
        the max_page_count cap
        any other                                        SpoolError
    relay.queue.spool_records
        ValueError, KeyError, TypeError of a row         SpoolCorruptError
    ugem.core.drain_state
        OSError, ValueError (json), KeyError, TypeError  UgemError naming the file
        of the drain request
    ugem.core.transfer_client (a drain's hand-over to another node's admin API)
        httpx.HTTPError (not reached, cut, timed out)    TransferError UNREACHABLE
        its answer 5xx                                   TransferError UNREACHABLE
        its answer 413, 422                              TransferError MESSAGE
        any other answer but 200, 201                    TransferError RECEIVER
    ugem.core.registry_watch (the registry's fail-static guard)
        StoreError, StoreRefused of a sync               the store taken as unreachable or
                                                         refused: the registry's last copy
                                                         serves (one WARNING per change)
    relay.accept.commands
        the registry's copy older than [store]           451 4.3.0 at MAIL
        max_stale while the store is down                (replies.REGISTRY_UNAVAILABLE)
        SpoolFullError at the end of DATA                452 4.3.1 (replies.SPOOL_FULL)
        SpoolError at the end of DATA                    451 4.3.0 (replies.INTERNAL_ERROR)
        StoreError (or any other exception) keeping a    451 4.3.0 (replies.INTERNAL_ERROR)
        complaint (mail to [reputation] fbl_address)
        PathError                                        its Reply
    relay.accept.session
        UnicodeDecodeError of a command line             501 5.5.4 (replies.SYNTAX_ERROR)
    relay.tls
        OSError, ssl.SSLError loading a certificate      ConfigError smtp.tls_cert,
        or the CA file                                   delivery.tls_ca_file
    relay.dns
        dns.exception.Timeout, DNSException;             DnsTrouble
        RuntimeError (the loop stopped);
        concurrent.futures.TimeoutError, CancelledError
        ValueError of a [delivery] dns_servers entry     ConfigError delivery.dns_servers
    relay.inbound.spf
        DnsTrouble                                       spf.TempError (temperror)
    relay.inbound.dkim_verify
        dkim.DKIMException, dkim.ValidationError,        DKIM result neutral, fail,
        dkim.KeyFormatError, DnsTrouble                  permerror, temperror
    relay.readiness
        spf.TempError, spf.PermError                     a failed finding
    relay.reputation.dnsbl
        DnsTrouble of a blocklist lookup                 state unknown (of its TXT: no reason)
        ValueError of an address that is no IP           state unknown
    relay.deliver.routing
        dns.exception.Timeout, DNSException              RouteFailure 451 4.4.3
        dns.resolver.NXDOMAIN of the MX lookup           RouteFailure 550 5.1.2
        ValueError of a destination domain               RouteFailure 550 5.1.2
    relay.deliver.mta_sts
        httpx.HTTPError, UnicodeDecodeError of a policy  StsError failed / invalid: no policy
        DeliveryError of the TXT lookup                  no policy (logged)
    relay.deliver.dkim_sign
        ValueError (dkimpy's header parsing), ValueError SigningError; `outgoing` logs
        and TypeError (cryptography), UgemError and      dkim_sign_failed and sends the
        OSError of a key                                 mail unsigned
    relay.deliver.pool (opening a session)
        aiosmtplib.SMTPResponseException to STARTTLS     opportunistic: stay in plain text
        aiosmtplib.SMTPException, OSError, TimeoutError  opportunistic: reconnect once
        of the STARTTLS handshake or the EHLO after it   without STARTTLS (logged)
        aiosmtplib.SMTPResponseException to a required   TlsRequired 4.7.4
        STARTTLS
        SMTPException, OSError (ssl.SSLError),           TlsRequired 4.7.5
        TimeoutError of a required STARTTLS
    relay.deliver.trouble (a failure instead of a reply, for each recipient)
        RouteFailure                                     its own code and status
        aiosmtplib.SMTPConnectResponseError,             deferred 451 4.4.0 (a site
        SMTPHeloError                                    problem, even when 5xx)
        aiosmtplib.SMTPResponseException, TlsRequired    the outcome of its code and text
        SMTPConnectTimeoutError, SMTPConnectError,       deferred 451 4.4.1
        ConnectionRefusedError
        ssl.SSLError                                     deferred 451 4.7.5
        TimeoutError, ConnectionError,                   deferred 451 4.4.2
        SMTPServerDisconnected, any other OSError
        dns.exception.DNSException                       deferred 451 4.4.3
        anything else                                    deferred 451 4.3.0
    relay.deliver.transaction
        any unexpected exception of an attempt           deferred 451 4.3.0, logged with
                                                         its traceback (delivery_error)
    anomaly.trace_reader
        OSError, EOFError, isal_zlib.error reading a     UsageError naming the file
        trace; msgspec.DecodeError of a line             (and the line)
    anomaly.evaluate, anomaly.protocol, anomaly.simulate
        OSError, ValueError (json), KeyError, TypeError  UsageError
        of labels, reports and the trace cache
    admin.errors
        fastapi RequestValidationError (pydantic's       HTTP 422
        validation of a request body)
    admin.server
        OSError binding the admin listener               UgemError

The project's errors become answers at the top: HTTP in admin.errors
(UsageError 422, ForbiddenError 403, NotFoundError 404, ConflictError 409,
StoreError and SpoolError 503: "the store is unreachable ..." says why), exit
codes in ugem.cli (ConfigError and UsageError 2, StoreError 75 (EX_TEMPFAIL:
the store is unavailable, try again), any other UgemError 1).
"""

from __future__ import annotations

from typing import Protocol


class UgemError(Exception):
    """Base of every error the project raises on purpose."""


class ConfigError(UgemError):
    """Invalid configuration. The message names the key, the value and what is allowed."""

    def __init__(self, key: str, value: object, allowed: str) -> None:
        self.key = key
        self.value = value
        self.allowed = allowed
        what = key if key.startswith(("--", "UGEM_")) else f"key {key}"
        super().__init__(f"config {what}: {value!r} is not valid; {allowed}")


class UsageError(UgemError):
    """Invalid input to the CLI or the API."""


class NotFoundError(UgemError):
    """The named object does not exist."""


class ConflictError(UgemError):
    """The request contradicts the current state; the message says what to do."""


class ForbiddenError(UgemError):
    """The caller's role does not allow the action; the message names the role it needs."""


class StoreError(UgemError):
    """The registry's backing store failed."""


class StoreRefused(StoreError):
    """The store answers, but its state may not replace the registry's copy (the message
    says what was seen: no generation, another one, an older version, no connections)."""


class SpoolError(UgemError):
    """The spool could not make a message durable or read it back."""


class SpoolFullError(SpoolError):
    """No space left for the spool (disk full, or the configured size cap)."""


class SpoolCorruptError(SpoolError):
    """A spooled record failed its integrity check."""


class TransferError(UgemError):
    """A message was not handed over to another node; it stays here. `scope` says what
    failed: MESSAGE, the receiver refused this message (too large, a bad envelope);
    RECEIVER, it refuses every message (the token, it is draining itself); UNREACHABLE,
    it was not reached or could not take it now (down, timed out, full): worth a retry."""

    MESSAGE, RECEIVER, UNREACHABLE = "message", "receiver", "unreachable"

    def __init__(self, scope: str, text: str) -> None:
        super().__init__(text)
        self.scope = scope


class _QueryType(Protocol):
    """A DNS query type as dnspython gives it (`dns.rdatatype.RdataType`)."""

    def to_text(self, value: int, /) -> str: ...

    def __int__(self) -> int: ...


class DnsTrouble(UgemError):
    """A lookup got no usable answer (timeout, SERVFAIL, no resolver): a temporary error.

    str() is the sentence the inbound checks report ("DNS TXT lookup of a.kz
    timed out"); `brief()` the readiness findings' form ("TXT a.kz: timed out").
    """

    def __init__(self, name: str, rdtype: _QueryType, problem: str, text: str) -> None:
        super().__init__(text)
        self.name = name
        self.qtype = rdtype.to_text(int(rdtype))  # dns.rdatatype.to_text(rdtype)
        self.problem = problem

    def brief(self) -> str:
        return f"{self.qtype} {self.name}: {self.problem}"


class SigningError(UgemError):
    """The message could not be signed (unparsable, or its key unusable)."""


class DeliveryError(UgemError):
    """An outbound delivery attempt failed before any per-recipient reply."""


class RouteFailure(DeliveryError):
    """A domain could not be routed; `permanent` (5xx) bounces, else the mail is deferred."""

    def __init__(self, code: int, status: str, text: str) -> None:
        self.code = code
        self.status = status
        self.text = text
        super().__init__(f"{code} {status} {text}")

    @property
    def permanent(self) -> bool:
        return self.code >= 500


class StsError(DeliveryError):
    """No policy could be had; `result` is the fetch metric's label: failed or invalid."""

    def __init__(self, result: str, text: str) -> None:
        super().__init__(text)
        self.result = result


class TlsRequired(DeliveryError):
    """A hop cannot give the verified TLS a recipient's domain requires.

    A local 451 verdict, classified by `relay.deliver.trouble` like the reply it reads
    as ("451 4.7.4 TLS required for ..."): deferred, never bounced. `code` and
    `message` are a reply's (as aiosmtplib's SMTPResponseException has them; so is
    str(), "(451, '4.7.4 ...')").
    """

    CODE = 451  # a local temporary failure (relay.deliver.trouble.LOCAL_TEMPFAIL)

    def __init__(self, status: str, text: str) -> None:
        self.code = self.CODE
        self.message = f"{status} {text}"
        super().__init__(self.code, self.message)
