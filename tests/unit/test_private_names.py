"""The libraries' internals the code relies on are still there.

The relay subclasses or reaches into library classes (aiosmtplib's protocol for
pipelined replies, pyspf's query, dkimpy's signer and
canonicalization, uvicorn's h11 protocol and server, asyncio's StreamReader): names
no library promises to keep. `PRIVATE_NAMES` lists each one with the file that uses
it, so an upgrade that removes or reshapes one fails here naming both, rather than
somewhere in a scenario test, or not at all. When a file moves or stops using a
name, update its rows (`test_each_file_still_uses_its_names` says which).

A row is (using file, module, qualified name). A name ending in "(...)" is a
callable with exactly those parameters (`self` left out): one the code overrides
or calls positionally. An attribute of a class counts when the class (or a base)
has it, or when a method of the class or a base assigns `self.<name> = ...` (an
instance attribute: the source is read, nothing is constructed).
"""

from __future__ import annotations

import ast
import asyncio
import importlib
import importlib.metadata
import inspect
import platform
import re
import textwrap
import warnings
from pathlib import Path
from typing import Any

import pytest
from aiosmtplib.protocol import SMTPProtocol

from relay.deliver.smtp_client import PipelinedProtocol

ROOT = Path(__file__).resolve().parents[2]

PRIVATE_NAMES: list[tuple[str, str, str]] = [
    # aiosmtplib: PipelinedProtocol reads the replies to a pipelined group itself
    ("relay/deliver/smtp_client.py", "aiosmtplib.protocol", "SMTPProtocol._buffer"),
    ("relay/deliver/smtp_client.py", "aiosmtplib.protocol", "SMTPProtocol._response_waiter"),
    ("relay/deliver/smtp_client.py", "aiosmtplib.protocol", "SMTPProtocol._command_lock"),
    ("relay/deliver/smtp_client.py", "aiosmtplib.protocol", "SMTPProtocol._loop"),
    (
        "relay/deliver/smtp_client.py",
        "aiosmtplib.protocol",
        "SMTPProtocol._read_response_from_buffer()",
    ),
    (
        "relay/deliver/smtp_client.py",
        "aiosmtplib.protocol",
        "SMTPProtocol._set_response_exception(waiter, exc)",
    ),
    ("relay/deliver/smtp_client.py", "aiosmtplib.protocol", "SMTPProtocol.read_response(timeout)"),
    ("relay/deliver/pool.py", "aiosmtplib", "SMTP.protocol"),  # adopted by PipelinedProtocol
    # asyncio: STARTTLS empties the session's reader and points it at the TLS transport
    ("relay/accept/session.py", "asyncio", "StreamReader._buffer"),
    ("relay/accept/session.py", "asyncio", "StreamReader._transport"),
    # pyspf: the query (SpfQuery, also the readiness check's) does its DNS through ours
    # and counts the RFC 7208 limits
    ("relay/inbound/spf.py", "spf", "query.dns(name, qtype, cnames, ignore_void)"),
    ("relay/inbound/spf.py", "spf", "query.check_lookups()"),
    ("relay/inbound/spf.py", "spf", "query.cache"),
    ("relay/inbound/spf.py", "spf", "query.lookups"),
    ("relay/inbound/spf.py", "spf", "query.void_lookups"),
    # dkimpy: signing from its parts, verifying a message we parsed, linear canonicalization
    ("relay/deliver/dkim_sign.py", "dkim", "DKIM.SHOULD"),
    ("relay/deliver/dkim_sign.py", "dkim", "fold(header, namelen, linesep)"),
    (
        "relay/deliver/dkim_sign.py",
        "dkim",
        "hash_headers(hasher, canonicalize_headers, headers, include_headers, sigheader, sig)",
    ),
    ("relay/inbound/dkim_verify.py", "dkim", "DKIM.headers"),
    ("relay/inbound/dkim_verify.py", "dkim", "DKIM.body"),
    ("relay/inbound/dkim_verify.py", "dkim", "DKIM.verify_headerprep(idx)"),
    (
        "relay/inbound/dkim_verify.py",
        "dkim",
        "DKIM.verify_sig(sig, include_headers, sig_header, dnsfunc)",
    ),
    ("relay/inbound/dkim_verify.py", "dkim", "evaluate_pk(name, s)"),
    ("relay/dkim_canon.py", "dkim.canonicalization", "strip_trailing_whitespace(content)"),
    ("relay/dkim_canon.py", "dkim.canonicalization", "compress_whitespace(content)"),
    ("relay/dkim_canon.py", "dkim.canonicalization", "strip_trailing_lines(content)"),
    ("relay/dkim_canon.py", "dkim.canonicalization", "correct_empty_body(content)"),
    # uvicorn: the admin listener's deadlines and cap, and its own signal handling
    (
        "admin/http_protocol.py",
        "uvicorn.protocols.http.h11_impl",
        "H11Protocol.__init__(config, server_state, app_state, _loop)",
    ),
    ("admin/http_protocol.py", "uvicorn.protocols.http.h11_impl", "H11Protocol.connections"),
    ("admin/http_protocol.py", "uvicorn.protocols.http.h11_impl", "H11Protocol.cycle"),
    ("admin/http_protocol.py", "uvicorn.protocols.http.h11_impl", "H11Protocol.conn"),
    ("admin/http_protocol.py", "uvicorn.protocols.http.h11_impl", "H11Protocol.loop"),
    ("admin/http_protocol.py", "uvicorn.protocols.http.h11_impl", "H11Protocol.transport"),
    (
        "admin/http_protocol.py",
        "uvicorn.protocols.http.h11_impl",
        "H11Protocol.on_response_complete()",
    ),
    (
        "admin/http_protocol.py",
        "uvicorn.protocols.http.h11_impl",
        "RequestResponseCycle.more_body",
    ),
    (
        "admin/http_protocol.py",
        "uvicorn.protocols.http.h11_impl",
        "RequestResponseCycle.response_started",
    ),
    ("admin/server.py", "uvicorn", "Server.capture_signals()"),
    ("admin/server.py", "uvicorn", "Server.started"),
    ("admin/server.py", "uvicorn", "Server.servers"),
    ("admin/server.py", "uvicorn", "Server.should_exit"),
    # redis-py: the store's Sentinel keeps its list of sentinel clients whole after each
    # master discovery (two at once could drop one) and closes every client it made
    ("ugem/core/store/redis.py", "redis.asyncio.sentinel", "Sentinel.sentinels"),
    (
        "ugem/core/store/redis.py",
        "redis.asyncio.sentinel",
        "Sentinel.discover_master(service_name)",
    ),
]

_CALLABLE = re.compile(r"^(?P<path>[\w.]+)\((?P<params>[\w, ]*)\)$")


def _split(qualified: str) -> tuple[str, tuple[str, ...] | None]:
    """("SMTP._reset_timeout", ("duration",)) from "SMTP._reset_timeout(duration)"."""
    called = _CALLABLE.match(qualified)
    if called is None:
        return qualified, None
    params = tuple(p.strip() for p in called["params"].split(",") if p.strip())
    return called["path"], params


def _release(module: str) -> str:
    """The distribution and version that provide `module`, e.g. "aiosmtplib 5.1.3"."""
    top = module.partition(".")[0]
    names = importlib.metadata.packages_distributions().get(top)
    if not names:  # the standard library
        return f"Python {platform.python_version()}"
    return f"{names[0]} {importlib.metadata.version(names[0])}"


def _targets(node: ast.AST) -> list[ast.expr]:
    if isinstance(node, ast.Assign):
        return [t for target in node.targets for t in _flat(target)]
    if isinstance(node, ast.AnnAssign | ast.AugAssign):
        return _flat(node.target)
    return []


def _flat(target: ast.expr) -> list[ast.expr]:
    if isinstance(target, ast.Tuple | ast.List):
        return [t for elt in target.elts for t in _flat(elt)]
    return [target]


def _assigned_in(cls: type, name: str) -> bool:
    """Whether a method of `cls` or of a base assigns `self.<name>` (an instance attribute)."""
    for klass in cls.__mro__:
        with warnings.catch_warnings():  # pyspf's source has invalid escapes ("\\d")
            warnings.simplefilter("ignore")  # DeprecationWarning, SyntaxWarning from 3.12
            try:
                tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
            except (OSError, TypeError):  # builtins, or no source on this machine
                continue
        for node in ast.walk(tree):
            for target in _targets(node):
                if (
                    isinstance(target, ast.Attribute)
                    and target.attr == name
                    and isinstance(target.value, ast.Name)
                    and target.value.id == "self"
                ):
                    return True
    return False


def _lookup(module: str, path: str) -> tuple[bool, Any]:
    """(found, the object or None) for the dotted `path` inside `module`."""
    owner: Any = importlib.import_module(module)
    *outer, last = path.split(".")
    for part in outer:
        if not hasattr(owner, part):
            return False, None
        owner = getattr(owner, part)
    if hasattr(owner, last):
        return True, getattr(owner, last)
    if inspect.isclass(owner) and _assigned_in(owner, last):
        return True, None
    return False, None


def _parameters(function: Any) -> tuple[str, ...]:
    names = tuple(inspect.signature(function).parameters)
    return names[1:] if names[:1] == ("self",) else names


@pytest.mark.parametrize(
    ("using", "module", "qualified"), PRIVATE_NAMES, ids=[f"{u}:{q}" for u, _, q in PRIVATE_NAMES]
)
def test_the_library_still_has_the_name(using: str, module: str, qualified: str) -> None:
    path, params = _split(qualified)
    found, obj = _lookup(module, path)
    assert found, f"{using} uses {module}.{path}; it is gone in {_release(module)}"
    if params is not None:
        assert callable(obj), f"{using} calls {module}.{path}; in {_release(module)} it is {obj!r}"
        has = _parameters(obj)
        assert has == params, (
            f"{using} relies on {module}.{path}({', '.join(params)}); "
            f"in {_release(module)} it takes ({', '.join(has)})"
        )


@pytest.mark.parametrize("using", sorted({u for u, _, _ in PRIVATE_NAMES}))
def test_each_file_still_uses_its_names(using: str) -> None:
    """The table follows the code: a row whose file moved, or no longer says the name, is stale."""
    file = ROOT / using
    assert file.is_file(), f"{using} is gone: move or drop its rows in PRIVATE_NAMES"
    text = file.read_text(encoding="utf-8")
    for row_using, module, qualified in PRIVATE_NAMES:
        name = _split(qualified)[0].rpartition(".")[2]
        if row_using == using:
            assert name in text, f"{using} no longer mentions {name} ({module}.{qualified})"


async def test_an_aiosmtplib_protocol_can_become_a_pipelined_one() -> None:
    """relay/deliver/smtp_client.py swaps the class of the protocol aiosmtplib made (`adopt`)."""
    protocol = SMTPProtocol(loop=asyncio.get_running_loop())
    adopted = PipelinedProtocol.adopt(protocol)
    release = _release("aiosmtplib")
    assert adopted is protocol and type(protocol) is PipelinedProtocol, (
        "relay/deliver/smtp_client.py swaps protocol.__class__ to PipelinedProtocol;"
        f" not in {release}"
    )
    assert not adopted._ahead and not adopted._grouped
    assert isinstance(protocol._buffer, bytearray), f"SMTPProtocol._buffer in {release}"
