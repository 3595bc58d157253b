"""`ss -ltn` (or `ss -tulpn`, `ss -a`) output as the TCP ports something listens on.

Rows are split on whitespace; the local address is the 4th field, or the 5th when the output
starts with a Netid column. Only TCP rows in state LISTEN count (UDP is UNCONN, unix sockets have
no port). Addresses come as `0.0.0.0:22`, `*:80`, `[::]:22`, `:::111` (older ss), and
`0.0.0.0%virbr0:67` or `127.0.0.53%lo:53` (bound to one interface): the port is after the last
colon (a service name such as `ssh` when ss ran without -n), the interface after `%`.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

# Addresses a listener binds to take connections on every interface.
WILDCARD_ADDRESSES = frozenset({"*", "0.0.0.0", "::"})  # noqa: S104 - read, never bound


class SsFailed(ValueError):
    """ss printed no socket table; the message is what it printed instead."""


@dataclass(frozen=True, slots=True)
class ListeningSocket:
    address: str  # without brackets or interface: "0.0.0.0", "::", "*", "127.0.0.1"
    port: int
    interface: str = ""

    @property
    def is_wildcard(self) -> bool:
        return self.address in WILDCARD_ADDRESSES

    @property
    def is_loopback(self) -> bool:
        try:
            return ipaddress.ip_address(self.address).is_loopback
        except ValueError:
            return False


def split_address(local: str) -> tuple[str, int, str] | None:
    """`[::]:22` -> ("::", 22, ""); `0.0.0.0%virbr0:67` -> ("0.0.0.0", 67, "virbr0")."""
    host, sep, port_text = local.rpartition(":")
    if not sep or not port_text:
        return None
    port = _port_number(port_text)
    if port is None:
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif host == "::":
        # `:::111`: older ss prints the IPv6 wildcard without brackets.
        host = "::"
    interface = ""
    if "%" in host:
        host, interface = host.split("%", 1)
    return host, port, interface


def _port_number(text: str) -> int | None:
    """`22`, or a service name as ss prints without -n (`ssh`), looked up in /etc/services."""
    if text.isdigit():
        return int(text)
    try:
        return socket.getservbyname(text, "tcp")
    except OSError:
        return None


def parse_listening_tcp(text: str) -> list[ListeningSocket]:
    lines = text.splitlines()
    header_index = next(
        (i for i, line in enumerate(lines) if line.split()[:1] in (["State"], ["Netid"])), None
    )
    if header_index is None:
        first = next((line.strip() for line in lines if line.strip()), "no output")
        raise SsFailed(first)
    has_netid = lines[header_index].split()[0] == "Netid"
    sockets: list[ListeningSocket] = []
    for line in lines[header_index + 1 :]:
        fields = line.split()
        if has_netid:
            if len(fields) < 6 or fields[0] != "tcp":
                continue
            fields = fields[1:]
        if len(fields) < 5 or fields[0] != "LISTEN":
            continue
        parts = split_address(fields[3])
        if parts is None:
            continue
        address, port, interface = parts
        sockets.append(ListeningSocket(address=address, port=port, interface=interface))
    return sockets


def listens_for(sockets: list[ListeningSocket], host: str, port: int) -> bool:
    """Whether a connection to host:port made on that machine would find a listener.

    A wildcard listener takes every address; `localhost` means any loopback listener; another
    name than an address literal cannot be resolved from here, so any listener on the port counts.
    """
    on_port = [s for s in sockets if s.port == port]
    if any(s.is_wildcard for s in on_port):
        return True
    if host == "localhost":
        return any(s.is_loopback for s in on_port)
    try:
        wanted = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return bool(on_port)
    for listener in on_port:
        try:
            if ipaddress.ip_address(listener.address) == wanted:
                return True
        except ValueError:
            continue
    return False
