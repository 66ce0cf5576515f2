"""Which web pages may reach the server: a pure ASGI layer in front of every route, static files
included, that refuses

- a `Host` the server does not answer to (400). This is what stops DNS rebinding: a page on
  evil.example whose name is re-pointed at 127.0.0.1 reaches the server with `Host:
  evil.example`, its own name, and is turned away before anything runs.
- a state-changing request (any method but GET, HEAD, OPTIONS) sent by a page of another origin
  (403): its `Origin`, or its `Referer` when it has no `Origin`, names another host or port than
  the request's own `Host`, or is `null` (sandboxed frames, file:// pages). A multipart form
  POST is a "simple" request that browsers send across sites without asking (no CORS
  preflight); this check is what refuses it. Requests without either header (curl, scripts)
  pass: they are not sent by a browser on someone else's behalf.

Reads by other pages are the browser's to refuse (same-origin policy; CORS stays off unless
`--cors-origin` names origins, which then also pass the origin check). Every answer also says
that no other site may frame the pages (clickjacking) or embed the API's answers.

The idea follows Jupyter's Host allow-list and Django's ALLOWED_HOSTS and CSRF origin check.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from segany.server.refusal import ASGIApp, Receive, Scope, Send, header, refuse

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
# Addresses that mean "every interface": not a name a client can send.
WILDCARD_BINDS = ("0.0.0.0", "::", "")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
# Sent with every answer: pages of other sites may neither frame this server's pages nor embed
# its answers (<img>, <script>) nor have a browser guess a type other than the one sent.
SECURITY_HEADERS = (
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"x-content-type-options", b"nosniff"),
)


@dataclass(frozen=True)
class HostPort:
    """A host name (lower case, no brackets, no trailing dot) and a port (None: not given)."""

    host: str
    port: int | None


def parse_host(value: str) -> HostPort | None:
    """A `Host` header ("example.com", "localhost:8000", "[::1]:8000") as a HostPort; None when
    it is not one (empty, a path or user info in it, a port that is not a number)."""
    if not value or any(c in value for c in "/\\@?#% \t"):
        return None
    try:
        parts = urlsplit(f"//{value}")
        port = parts.port
    except ValueError:
        return None
    host = (parts.hostname or "").rstrip(".")
    return HostPort(host, port) if host else None


def is_host_pattern(name: str) -> bool:
    """Whether `name` can be an allowed host: "*", a host name or address without scheme, port
    or path, or one with a leading dot (".example.org")."""
    if name == "*":
        return True
    bare = name[1:] if name.startswith(".") else name
    if bare.count(":") > 1 and not bare.startswith("["):  # an IPv6 address
        bare = f"[{bare}]"
    parsed = parse_host(bare)
    return parsed is not None and parsed.port is None and not bare.endswith(":")


def parse_origin(value: str) -> tuple[str, HostPort] | None:
    """An origin or URL ("https://example.com:8443/page") as (scheme, HostPort with the port
    the scheme implies when none is given); None for "null", other schemes or a malformed one."""
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if scheme not in ("http", "https") or not host:
        return None
    return scheme, HostPort(host, port if port is not None else _DEFAULT_PORTS[scheme])


def origin_text(value: str) -> str | None:
    """`value` spelled the one way origins are compared: "scheme://host[:port]", lower case,
    the scheme's default port left out; None when it is not an http(s) origin."""
    parsed = parse_origin(value)
    if parsed is None:
        return None
    scheme, where = parsed
    host = f"[{where.host}]" if ":" in where.host else where.host
    port = "" if where.port == _DEFAULT_PORTS[scheme] else f":{where.port}"
    return f"{scheme}://{host}{port}"


class AllowedHosts:
    """The names a request's `Host` may carry. Always: the loopback names, and any IP address
    (DNS rebinding needs a name: a page cannot make a browser send an address it was not
    opened at). Also: the address the server is bound to, and `names`, each exact or, with a
    leading dot (".example.org"), the name and every name under it; "*" allows any Host (only
    behind a proxy that checks it)."""

    def __init__(self, bound: str, names: Iterable[str] = ()) -> None:
        names = [name.strip().lower().rstrip(".") for name in names]
        self.any = "*" in names
        exact = {*LOOPBACK_NAMES, *(n for n in names if n and not n.startswith("."))}
        if bound.lower() not in WILDCARD_BINDS:
            exact.add(bound.lower().strip("[]"))
        self.exact = frozenset(exact)
        self.suffixes = tuple(n for n in names if n.startswith(".") and len(n) > 1)

    def allows(self, host: str) -> bool:
        if self.any or host in self.exact or _is_ip_address(host):
            return True
        return any(host == s[1:] or host.endswith(s) for s in self.suffixes)

    def describe(self) -> str:
        """The rule in words, for messages and the start-up line."""
        if self.any:
            return "any host (--allowed-host '*')"
        names = sorted(self.exact) + [f"*{s}" for s in self.suffixes]
        return f"an IP address or one of: {', '.join(names)}"


class HostOriginGuard:
    """The ASGI layer (see the module's docstring). hosts: the Host rule; trusted_origins:
    origins (as `origin_text` spells them) whose pages may send state-changing requests, the
    same that CORS lets read (--cors-origin)."""

    def __init__(self, app: ASGIApp, hosts: AllowedHosts, trusted_origins: Iterable[str] = ()):
        self.app = app
        self.hosts = hosts
        self.trusted = frozenset(origin_text(o) or o for o in trusted_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        problem = self.problem(scope)
        if problem is not None:
            status, detail = problem
            await refuse(scope, send, status, detail, _header_pairs())
            return
        await self.app(scope, receive, _with_security_headers(send))

    def problem(self, scope: Scope) -> tuple[int, str] | None:
        """(status, message) when the request must be refused, else None."""
        hosts = header(scope, b"host")
        if len(hosts) != 1:
            return 400, "the request must carry exactly one Host header"
        raw = hosts[0].decode("latin-1")
        host = parse_host(raw)
        if host is None:
            return 400, f"the Host header {raw[:100]!r} is not a host name or address"
        if not self.hosts.allows(host.host):
            return 400, (
                f"this server does not answer to the host name {host.host[:100]!r}: it answers "
                f"to {self.hosts.describe()}. To reach it under that name, start it with "
                f"--allowed-host {host.host[:100]}"
            )
        # Websocket handshakes are GETs that browsers send across sites: origin-checked too.
        if scope["type"] == "http" and scope["method"] in SAFE_METHODS:
            return None
        return self._origin_problem(scope, host)

    def _origin_problem(self, scope: Scope, host: HostPort) -> tuple[int, str] | None:
        origins = header(scope, b"origin")
        if origins:
            what, value = "Origin", origins[-1].decode("latin-1")
        else:
            referers = header(scope, b"referer")
            if not referers:
                return None  # not sent by a browser for another page
            what, value = "Referer", referers[-1].decode("latin-1")
        if origin_text(value) in self.trusted or self._same_origin(value, host):
            return None
        shown = value[:100] if what == "Origin" else (origin_text(value) or value[:100])
        return 403, (
            f"cross-origin request refused: a page of {shown!r} ({what} header) may not "
            "change this server's data; open the app from this server itself, or start the "
            "server with --cors-origin ORIGIN to trust that page's origin"
        )

    @staticmethod
    def _same_origin(value: str, host: HostPort) -> bool:
        """Whether origin or URL `value` names the host and port the request was sent to. A
        Host without a port was sent to the scheme's default port, so the origin's port must
        then be a default one. The scheme is not compared: no one else can answer on the same
        host and port, and a TLS proxy in front may hide it."""
        parsed = parse_origin(value)
        if parsed is None:  # "null": sandboxed frames, file:// pages, opaque origins
            return False
        scheme, origin = parsed
        if origin.host != host.host:
            return False
        if host.port is None:
            return origin.port == _DEFAULT_PORTS[scheme]
        return origin.port == host.port


def _is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _header_pairs() -> list[tuple[str, str]]:
    return [(name.decode(), value.decode()) for name, value in SECURITY_HEADERS]


def _with_security_headers(send: Send) -> Send:
    async def sending(message: dict) -> None:
        if message["type"] == "http.response.start":
            present = {name.lower() for name, _ in message.get("headers", ())}
            extra = [(n, v) for n, v in SECURITY_HEADERS if n not in present]
            message = {**message, "headers": [*message.get("headers", ()), *extra]}
        await send(message)

    return sending
