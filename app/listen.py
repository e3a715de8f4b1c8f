"""Where `aftersale serve` listens, and the URL that reaches it from this machine.

Pure and quick to import: `aftersale health` (a container's probe, every few seconds) and
Settings (PUBLIC_URL's default) both use it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
# Each setting and the names it is read from, first found wins: ours, then the bare names
# that platforms (Heroku, Render, Cloud Run) and habit use.
HOST_VARIABLES = ("AFTERSALE_HOST", "HOST")
PORT_VARIABLES = ("AFTERSALE_PORT", "PORT")
# Listening on every address: from this machine, the loopback one reaches it.
_WILDCARDS = {"", "0.0.0.0", "::", "[::]"}  # noqa: S104 (names, not a bind)


def local_url(host: str, port: int) -> str:
    """`http://host:port` as a client on this machine reaches a server listening there."""
    if host in _WILDCARDS:
        host = DEFAULT_HOST
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    return f"http://{host}:{port}"


def from_environment(
    names: tuple[str, ...], environ: Mapping[str, str] | None = None
) -> str | None:
    """The value of the first of `names` set in the environment, else None."""
    environ = os.environ if environ is None else environ
    return next((environ[name] for name in names if name in environ), None)
