"""The grammar of a scenario's top-level ``proxy:`` key: a mapping in, a ``ProxySpec`` out.

```yaml
proxy: {version: 2, source: "198.51.100.{session}", source_port: "{port}"}
```

Keys: ``version`` (1 or 2, default 1: the text form every receiver reads), ``command``
(``proxy``, the default, or ``local``: v2's LOCAL, v1's ``PROXY UNKNOWN``, with no addresses),
``source``, ``source_port``, ``destination``, ``destination_port`` (templates over the
variables; left out: the connection's own local address and port, and the target's).

The header goes out before any reply, so its templates may use built-ins and declared
variables, not a step's captures nor the per-message ``{message_id}``. A value without
variables is checked here (an IPv4 or IPv6 literal, a port from 0 to 65535, both addresses of
one family), at its ``FILE:LINE:COL``; one made from variables is checked as each session
renders it (protocol/proxy.py), and a bad one fails that session.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from smtpload.errors import clipped, closest, shown
from smtpload.scenario.model import PER_MESSAGE_VARIABLES, ProxySpec
from smtpload.scenario.step_syntax import read_template
from smtpload.scenario.template import Template
from smtpload.scenario.yaml_nodes import NodeReader, is_blank
from smtpload.scenario.yaml_tree import MappingNode, Node

__all__ = ["read_proxy"]

_KEYS = ("version", "command", "source", "source_port", "destination", "destination_port")
_ADDRESS_KEYS = ("source", "destination")
_PORT_KEYS = ("source_port", "destination_port")
_COMMANDS = ("proxy", "local")
_VERSIONS = (1, 2)
_EXAMPLE = '{version: 2, source: "198.51.100.{session}", source_port: 4000}'


def read_proxy(node: Node, reader: NodeReader, available: Iterable[str]) -> ProxySpec | None:
    """Read the ``proxy:`` key.

    Args:
        available: the variables its templates may use (built-ins and declared ones).

    Returns:
        The spec, or None after reporting what is wrong.
    """
    if not isinstance(node, MappingNode):
        reader.problem(node, f"proxy takes a mapping, such as `proxy: {_EXAMPLE}`")
        return None
    keys = reader.mapping(node, "in proxy", _KEYS)
    ok = True
    version = 1
    if "version" in keys:
        number = reader.number(keys["version"][1], "proxy: version", whole=True)
        if number is not None and number not in _VERSIONS:
            reader.problem(keys["version"][1], "proxy: version must be 1 (text) or 2 (binary)")
        if number not in _VERSIONS:
            ok = False
        else:
            version = int(number)
    local = False
    if "command" in keys:
        command = reader.text(keys["command"][1], "proxy: command")
        if command is not None and command.lower() not in _COMMANDS:
            reader.problem(
                keys["command"][1],
                "proxy: command must be `proxy` (the default: the addresses given) or `local`"
                " (no addresses: v2's LOCAL, v1's PROXY UNKNOWN)",
            )
        ok = ok and command is not None and command.lower() in _COMMANDS
        local = command is not None and command.lower() == "local"
    values: dict[str, str | None] = dict.fromkeys(_ADDRESS_KEYS + _PORT_KEYS)
    constants: dict[str, tuple[Node, str]] = {}
    allowed = set(available)
    for key in _ADDRESS_KEYS + _PORT_KEYS:
        if key not in keys:
            continue
        value_node = keys[key][1]
        if local:
            reader.problem(
                keys[key][0],
                f"proxy: `{key}` with `command: local`: a LOCAL header carries no addresses;"
                " remove one of them",
            )
            ok = False
            continue
        text = _value_text(value_node, reader, key)
        template = None if text is None else read_template(value_node, reader, text)
        if (
            text is None
            or template is None
            or not _variables_known(template, value_node, reader, allowed)
        ):
            ok = False
            continue
        values[key] = text
        if template.is_constant and not _constant_ok(key, text, value_node, reader):
            ok = False
        elif template.is_constant:
            constants[key] = (value_node, text)
    if ok and all(key in constants for key in _ADDRESS_KEYS):
        source = ipaddress.ip_address(constants["source"][1])
        destination = ipaddress.ip_address(constants["destination"][1])
        if source.version != destination.version:
            reader.problem(
                constants["destination"][0],
                f"proxy: destination {destination} is IPv{destination.version} but the source"
                f" {source} is IPv{source.version}: a PROXY header's two addresses are of one"
                " family (TCP4 or TCP6)",
            )
            ok = False
    if not ok:
        return None
    mark = node.start_mark
    return ProxySpec(
        version=version,
        local=local,
        source=values["source"],
        source_port=values["source_port"],
        destination=values["destination"],
        destination_port=values["destination_port"],
        line=mark.line + 1,
        column=mark.column + 1,
    )


def _value_text(node: Node, reader: NodeReader, key: str) -> str | None:
    if is_blank(node):
        default = "the connection's own" if key.startswith("source") else "the target's"
        reader.problem(node, f"proxy: {key} has no value; leave the key out for {default}")
        return None
    return reader.text(node, f"proxy: {key}")


def _variables_known(template: Template, node: Node, reader: NodeReader, allowed: set[str]) -> bool:
    for name, offset in zip(template.names, template.name_offsets, strict=True):
        if name in allowed and name not in PER_MESSAGE_VARIABLES:
            continue
        if name in PER_MESSAGE_VARIABLES:
            message = f"{{{name}}} is new for each message; the PROXY header has no message"
        else:
            close = closest(name, sorted(allowed))
            hint = f", or did you mean {{{clipped(close)}}}?" if close is not None else ""
            message = (
                f"unknown variable {{{clipped(name)}}} (declare it under variables:{hint}; the"
                " header goes out before any reply, so no capture can fill it)"
            )
        reader.problem_at(node, offset, f"proxy: {message}")
        return False
    return True


def _constant_ok(key: str, text: str, node: Node, reader: NodeReader) -> bool:
    if key in _PORT_KEYS:
        if text.isascii() and text.isdigit() and len(text) <= 5 and int(text) <= 65535:
            return True
        reader.problem(node, f"proxy: {key} {shown(text)} must be a port number from 0 to 65535")
        return False
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        address = None
    if address is None or (isinstance(address, ipaddress.IPv6Address) and address.scope_id):
        reader.problem(
            node,
            f"proxy: {key} {shown(text)} must be an IPv4 or IPv6 address, such as"
            " 198.51.100.7 or 2001:db8::7 (a PROXY header carries addresses, not host names;"
            " quote an IPv6 address)",
        )
        return False
    return True
