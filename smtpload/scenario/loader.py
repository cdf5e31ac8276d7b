"""Reading a scenario file: YAML text in, a validated ``model.Scenario`` out.

This module owns the file-level scenario grammar (the top-level keys, the target, variables, the
list of steps, and the checks across steps: variables used before they exist, data only after a
354, nothing after close, step names) and every message about those, each as
``FILE:LINE:COL: message``; it reports all of a file's problems at once (``ScenarioError``).
Reading the YAML nodes themselves (positions, duplicate and unknown keys, YAML 1.1's coercion
traps) is ``yaml_nodes.py``'s; the grammar of one step (its action and options) is
``step_syntax.py``'s, and of ``expect`` values ``expectation_syntax.py``'s. This module does no
I/O beyond reading the file, compiles nothing for the engine, and never imports trio.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from smtpload.errors import Problem, ScenarioError, clipped, closest, shown
from smtpload.scenario.block_syntax import BlockDraft, check_blocks, read_steps, to_blocks
from smtpload.scenario.feed_syntax import value_problem_at
from smtpload.scenario.input_file import InputTooLargeError, read_input
from smtpload.scenario.load_syntax import read_load
from smtpload.scenario.model import (
    BUILTIN_VARIABLES,
    IMPLICIT_TLS_PORT,
    MESSAGE_SIZE_VARIABLE,
    MESSAGE_STEP_KINDS,
    PER_MESSAGE_VARIABLES,
    PROTOCOLS,
    TLS_MIN_VERSIONS,
    FeedColumn,
    Origin,
    RandomChoice,
    Scenario,
    Step,
    StepKind,
    Target,
    TlsSettings,
    VariableValue,
    is_unix_target,
    parse_target,
    server_name_problem,
)
from smtpload.scenario.proxy_syntax import read_proxy
from smtpload.scenario.rcpt_syntax import RECIPIENT_VARIABLE
from smtpload.scenario.step_syntax import (
    RESERVED_STEP_NAMES,
    StepDraft,
    positive_seconds,
    read_name,
    read_template,
)
from smtpload.scenario.template import Template, is_variable_name, not_a_variable_name
from smtpload.scenario.variable_syntax import read_variable_source
from smtpload.scenario.yaml_nodes import NULL_TAG, NodeReader, is_blank, kind_of
from smtpload.scenario.yaml_tree import MappingNode, Node, ScalarNode, SequenceNode

__all__ = ["load_scenario", "parse_scenario"]

_TOP_KEYS = (
    "name",
    "description",
    "protocol",
    "target",
    "timeout",
    "variables",
    "load",
    "proxy",
    "steps",
)
_TARGET_KEYS = ("host", "port", "tls", "ca", "server_name", "cert", "key", "min_version")
_TLS_MODES = ("implicit",)
# The target's TLS files: its key, and the TlsSettings field it sets.
_TLS_FILES = {"ca": "ca_file", "cert": "cert_file", "key": "key_file"}
_DEFAULT_PORT = 25  # the well-known SMTP port (IANA "smtp")


def load_scenario(path: str | os.PathLike[str]) -> Scenario:
    """Read and validate a scenario file.

    Raises:
        ScenarioError: the file cannot be read, is larger than ``MAX_INPUT_BYTES`` (10 MiB),
            is not UTF-8, or is not a valid scenario.
    """
    name = os.fspath(path)
    try:
        raw = read_input(path)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        message = f"cannot read the scenario file ({reason}); check the path and permissions"
        raise ScenarioError([Problem(name, 1, 1, message)]) from None
    except InputTooLargeError as exc:
        message = (
            f"{exc} of a scenario; a large message is `data: {{size: BYTES}}`, not text in the file"
        )
        raise ScenarioError([Problem(name, 1, 1, message)]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        message = (
            f"the file is not UTF-8 (byte 0x{raw[exc.start]:02x} on line {line}); save it as UTF-8"
        )
        raise ScenarioError([Problem(name, 1, 1, message)]) from None
    del raw  # as large as the text: not kept while the text is read
    return parse_scenario(text, name)


def parse_scenario(
    text: str, path: str = "<string>", *, environ: Mapping[str, str] | None = None
) -> Scenario:
    """Validate scenario YAML.

    Args:
        text: the YAML document.
        path: the file it came from, used in messages and as ``Scenario.path``; the scenario's
            default name is its stem.
        environ: where ``{env: NAME}`` values are read, instead of the process's environment:
            replay hands an imported transcript's passwords over this way, in memory only.

    Raises:
        ScenarioError: with every problem found in the text.
    """
    validator = _Validator(text, path, environ)
    try:
        with _collector_paused():
            scenario = validator.scenario()
    except Exception as exc:  # a bug here must still reach the user as a located message
        message = f"internal error while validating ({type(exc).__name__}: {exc}); please report it"
        validator.problems.append(Problem(path, 1, 1, message))
        scenario = None
    if validator.problems or scenario is None:
        raise ScenarioError(validator.problems)
    return scenario


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a scenario is read.

    Reading builds a node tree and drafts (hundreds of thousands of objects for a large file)
    and frees none of them until it is done, so each pass of the collector over them finds
    nothing; for a 5 MB scenario those passes were three quarters of the time. The tree holds
    no cycles (except through YAML aliases), so plain reference counting frees it afterwards.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _Validator(NodeReader):
    """The file-level scenario grammar, read from the nodes; each problem lands in ``problems``."""

    # -- the document ----------------------------------------------------------------------

    def scenario(self) -> Scenario | None:
        root = self.compose("scenario")
        if root is None:
            return None
        if isinstance(root, ScalarNode) and root.tag == NULL_TAG:
            self.add(0, 0, "the file is empty; a scenario needs at least a list of `steps:`")
            return None
        if not isinstance(root, MappingNode):
            self.problem(
                root,
                f"a scenario must be a mapping of keys ({', '.join(_TOP_KEYS)}),"
                f" not a {kind_of(root)}",
            )
            return None
        keys = self.mapping(root, "at the top level", _TOP_KEYS)

        name = "scenario" if self.path == "<string>" else Path(self.path).stem
        if "name" in keys:
            name = read_name(keys["name"][1], self, "name") or name
        description = ""
        if "description" in keys:
            description = self.text(keys["description"][1], "description") or ""
        target = self._target(keys["target"][1]) if "target" in keys else None
        tls = self._tls_settings(keys["target"][1]) if "target" in keys else TlsSettings()
        timeout_s = None
        if "timeout" in keys:
            timeout_s = positive_seconds(keys["timeout"][1], self, "timeout")
        variables = self._variables(keys["variables"][1]) if "variables" in keys else []
        load = read_load(keys["load"][1], self) if "load" in keys else None
        protocol = self._protocol(keys["protocol"][1]) if "protocol" in keys else "smtp"
        proxy = None
        if "proxy" in keys:
            declared = [variable.name for variable in variables]
            proxy = read_proxy(keys["proxy"][1], self, [*BUILTIN_VARIABLES, *declared])
        if "steps" not in keys:
            self.problem(root, "the scenario has no `steps:`; add a list such as `- greeting: 220`")
            return None
        drafts, blocks = self._steps(keys["steps"][1])
        check_blocks(drafts, blocks, self)
        self._check_variables_used(variables, drafts)
        self._check_command_values(variables, drafts)
        self._check_message_size(variables, drafts)
        self._check_data_follows_354(drafts)
        self._check_bdat_without_data(drafts)
        self._check_nothing_in_the_clear_after_starttls(drafts)
        self._check_starttls_steps(drafts, target)
        self._check_ehlo_after_xclient(drafts)
        self._check_nothing_after_close(drafts)
        names = self._step_names(drafts)
        self._check_lmtp(drafts, protocol, names)
        if self.problems:
            return None
        steps = tuple(
            Step(
                kind=d.kind,
                name=names[d.number],
                text=d.text,
                data_size=d.data_size,
                expect=d.expect,
                capture=d.capture,
                timeout_s=d.timeout_s,
                line=d.node.start_mark.line + 1,
                column=d.node.start_mark.column + 1,
                auth=d.auth,
                expect_each=tuple((name, expect) for name, _node, expect in d.expect_each),
                xclient=d.xclient,
                chunking=d.chunking,
                recipients=d.recipients,
                message=d.message,
            )
            for d in drafts
            if d.kind is not None
        )
        return Scenario(
            path=self.path,
            name=name,
            description=description,
            target=target,
            timeout_s=timeout_s,
            variables=tuple((v.name, v.text if v.value is None else v.value) for v in variables),
            steps=steps,
            load=load,
            tls=tls,
            protocol=protocol,
            proxy=proxy,
            blocks=to_blocks(drafts, blocks),
        )

    def _protocol(self, node: Node) -> str:
        written = self.text(node, "protocol")
        if written is not None and written.lower() not in PROTOCOLS:
            self.problem(
                node,
                f"protocol {shown(written)} is not one smtpload speaks; write"
                f" {' or '.join(PROTOCOLS)} (LMTP: RFC 2033)",
            )
            return "smtp"
        return "smtp" if written is None else written.lower()

    def _target(self, node: Node) -> Target | None:
        if isinstance(node, MappingNode):
            keys = self.mapping(node, "in target", _TARGET_KEYS)
            if "host" not in keys:
                self.problem(node, "target needs a `host:` (and optionally `port:`, default 25)")
                return None
            host = self._host(keys["host"][1])
            port: float | None = _DEFAULT_PORT
            if "port" in keys:
                port = self._port(keys["port"][1])
            implicit = False
            if "tls" in keys:
                mode = self.text(keys["tls"][1], "target: tls")
                if mode is not None and mode not in _TLS_MODES:
                    self.problem(
                        keys["tls"][1],
                        f"target: tls {shown(mode)} is not a TLS mode; write `tls: implicit`"
                        " (TLS from the first byte, RFC 8314, port 465), or use a `starttls`"
                        " step for STARTTLS",
                    )
                implicit = mode == "implicit"
            if "port" not in keys and implicit:
                port = IMPLICIT_TLS_PORT
            if host is None or port is None:
                return None
            return Target(host, int(port), implicit_tls=implicit)
        if isinstance(node, SequenceNode):
            self.problem(node, 'target must be "host:port"; quote IPv6 forms: "[::1]:2525"')
            return None
        written = self.text(node, "target")
        if written is None:
            return None
        try:
            base = str(Path(self.path).parent) if self.path != "<string>" else None
            return parse_target(written, unix_base=base)
        except ValueError as error:
            self.problem(node, str(error))
            return None

    def _tls_settings(self, node: Node) -> TlsSettings:
        """The TLS settings of a ``target`` mapping (files made relative to the scenario's
        folder, and checked to exist: a missing CA file is said here, before any run)."""
        if not isinstance(node, MappingNode):
            return TlsSettings()
        keys = {key.value: value for key, value in node.value if isinstance(key, ScalarNode)}
        values: dict[str, str | None] = {}
        origins: list[tuple[str, Origin]] = []
        for key, field in _TLS_FILES.items():
            if key in keys:
                values[field] = self._tls_file(keys[key], key)
                mark = keys[key].start_mark
                origins.append(
                    (field, Origin(f"target: {key}", self.path, mark.line + 1, mark.column + 1))
                )
        if "server_name" in keys:
            name = self.text(keys["server_name"], "target: server_name")
            problem = None if name is None else server_name_problem(name)
            if problem is not None:
                self.problem(keys["server_name"], f"target: server_name {problem}")
                name = None
            values["server_name"] = name
        if "min_version" in keys:
            version = keys["min_version"]
            written = version.value if isinstance(version, ScalarNode) else None
            if written not in TLS_MIN_VERSIONS:
                self.problem(
                    version,
                    "target: min_version must be "
                    + " or ".join(f'"{v}"' for v in TLS_MIN_VERSIONS)
                    + ' (quote it: min_version: "1.3")',
                )
            else:
                values["min_version"] = written
        if ("cert" in keys) != ("key" in keys) and "cert" not in keys:
            self.problem(keys["key"], "target: key needs a `cert:` (the client certificate)")
        return TlsSettings(**values, origins=tuple(origins))

    def _tls_file(self, node: Node, key: str) -> str | None:
        written = self.text(node, f"target: {key}")
        if written is None:
            return None
        base = Path(self.path).parent if self.path != "<string>" else Path()
        path = base / Path(written).expanduser()
        if not path.is_file():
            self.problem(
                node,
                f"target: {key} {shown(written)}: no such file ({path}); a relative name is"
                " read from the scenario's folder",
            )
            return None
        return str(path)

    def _host(self, node: Node) -> str | None:
        host = self.text(node, "target: host")
        if host is not None and host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if host is not None and (not host or any(ch.isspace() for ch in host)):
            self.problem(node, "target: host must be a host name or address without spaces")
            return None
        if host is not None and is_unix_target(host):
            # It would be looked up as a host name, and fail in every session.
            self.problem(
                node, "a unix socket is no host: write `target: unix:/path/to/socket` instead"
            )
            return None
        return host

    def _port(self, node: Node) -> float | None:
        port = self.number(node, "target: port", whole=True)
        if port is not None and not 1 <= port <= 65535:
            self.problem(node, f"target: port {port} must be from 1 to 65535")
            return None
        return port

    def _variables(self, node: Node) -> list[_Variable]:
        if is_blank(node):
            return []
        if not isinstance(node, MappingNode):
            self.problem(node, f"variables must be a mapping of name: value, not a {kind_of(node)}")
            return []
        variables: list[_Variable] = []
        for name, (key_node, value_node) in self.mapping(node, "in variables", None).items():
            ok = True
            if not is_variable_name(name):
                self.problem(key_node, not_a_variable_name("variable name", name))
                ok = False
            elif name in BUILTIN_VARIABLES:
                self.problem(
                    key_node, f"{{{clipped(name)}}} is a built-in variable; choose another name"
                )
                ok = False
            if isinstance(value_node, MappingNode):
                # A feed's column, a random number or choice (variable_syntax.py).
                value = read_variable_source(value_node, self, name)
                if ok:  # kept when refused too: its uses are not also "unknown variable"
                    variables.append(_Variable(name, "", value_node, None, value))
                continue
            text = self.text(value_node, f"variable {shown(name)}")
            template = None if text is None else read_template(value_node, self, text)
            if ok and text is not None:
                variables.append(_Variable(name, text, value_node, template))
        return variables

    # -- steps -----------------------------------------------------------------------------

    def _steps(self, node: Node) -> tuple[list[StepDraft], list[BlockDraft]]:
        if is_blank(node):
            self.problem(node, "steps is empty; a scenario needs at least one step")
            return [], []
        if not isinstance(node, SequenceNode):
            self.problem(
                node, f"steps must be a list (lines starting with `- `), not a {kind_of(node)}"
            )
            return [], []
        if not node.value:
            self.problem(node, "steps is empty; a scenario needs at least one step")
        # The items and the repeat and pipeline blocks among them, flattened (block_syntax.py).
        return read_steps(node, self)

    # -- checks across steps ---------------------------------------------------------------

    def _check_variables_used(self, variables: list[_Variable], drafts: list[StepDraft]) -> None:
        """Every {name} must exist by the time it is rendered."""
        declared = {v.name: v for v in variables}
        available = set(BUILTIN_VARIABLES)
        for variable in variables:
            for name, offset in _uses(variable.template):
                if name == variable.name:
                    message = f"variable {{{clipped(name)}}} cannot use itself"
                elif name in PER_MESSAGE_VARIABLES:
                    message = _per_message_only(name, "a variable, which is set once per session")
                elif name in declared and name not in available:
                    message = (
                        f"variable {{{clipped(name)}}} is declared below this one; a variable"
                        " may use only built-ins and variables declared above it"
                    )
                elif name not in available:
                    message = _unknown_variable(name, available)
                else:
                    continue
                self.problem_at(variable.node, offset, message)
            available.add(variable.name)

        captured_by: dict[str, StepDraft] = {}
        for draft in drafts:
            for group in draft.groups:
                if group in declared and draft.capture_node is not None:
                    self.problem(
                        draft.capture_node,
                        f"capture group {shown(group)} would hide the variable"
                        f" {{{clipped(group)}}} declared on line"
                        f" {declared[group].node.start_mark.line + 1}; rename the group",
                    )
                captured_by.setdefault(group, draft)
        for draft in drafts:
            for node, template in draft.templates:
                for name, offset in _uses(template):
                    if name in PER_MESSAGE_VARIABLES and draft.kind not in _MESSAGE_KINDS:
                        self.problem_at(node, offset, _per_message_only(name, "a send step"))
                        continue
                    if name in available:
                        continue
                    if name == RECIPIENT_VARIABLE and draft.kind is StepKind.RCPT:
                        continue  # the recipient's number in its message (rcpt_syntax.py)
                    capturer = captured_by.get(name)
                    if capturer is None and any(node is n for n in draft.secret_nodes):
                        # A password's {...} may be its own text: neither it nor a near name.
                        message = (
                            "unknown variable (the secret's text is not shown); declare it"
                            " under variables:, or write a literal { as {{"
                        )
                    elif capturer is None:
                        message = _unknown_variable(name, available)
                    else:
                        by = "this step" if capturer is draft else f"step {capturer.number}"
                        message = (
                            f"{{{clipped(name)}}} is captured by {by}; a captured variable is"
                            " available only to the steps after the one that captures it"
                        )
                    self.problem_at(node, offset, message)
            available.update(draft.groups)

    def _check_command_values(self, variables: list[_Variable], drafts: list[StepDraft]) -> None:
        """A send step is one command line: no variable it uses may bring a line break, which
        would end the command early and send the rest as another (RFC 5321 §2.3.8), or a NUL
        (RFC 5321 §2.4, RFC 6531 §3.3: commands are text)."""
        unfit: dict[str, tuple[str, _Variable]] = {}  # variable -> (what it holds, where)
        for variable in variables:
            held = _unfit_in_command(variable.text)
            if isinstance(variable.value, RandomChoice):
                held = next(filter(None, map(_unfit_in_command, variable.value.choices)), None)
            if isinstance(variable.value, FeedColumn):
                self._check_feed_values(variable, variable.value, variables, drafts)
            elif held is not None:
                unfit[variable.name] = (held, variable)
            else:
                for name, _ in _uses(variable.template):
                    if name in unfit and name != variable.name:
                        unfit[variable.name] = unfit[name]
                        break
        if not unfit:
            return
        for draft in drafts:
            if draft.kind not in _COMMAND_KINDS:
                continue
            for node, template in draft.templates:
                for name, offset in _uses(template):
                    if name not in unfit:
                        continue
                    what, source = unfit[name]
                    via = "" if source.name == name else f" (from {{{source.name}}})"
                    self.problem_at(
                        node,
                        offset,
                        f"{{{clipped(name)}}} holds {what}{via}, declared on line"
                        f" {source.node.start_mark.line + 1}, and a send step is one command"
                        " line; use the variable in a data step's message only",
                    )

    def _check_feed_values(
        self,
        variable: _Variable,
        feed: FeedColumn,
        variables: list[_Variable],
        drafts: list[StepDraft],
    ) -> None:
        """A feed's values are data, read now: one that would break a command line (a line
        break, NUL) is refused at its row in the CSV when the variable, or one made from it,
        reaches a command (``_check_command_values``' rule)."""
        names = {variable.name}
        # Variables made from it carry its value too (each uses only those declared above).
        for other in variables:
            if any(name in names for name, _ in _uses(other.template)):
                names.add(other.name)
        use = next(
            (
                (draft, node, offset)
                for draft in drafts
                if draft.kind in _COMMAND_KINDS
                for node, template in draft.templates
                for name, offset in _uses(template)
                if name in names
            ),
            None,
        )
        if use is None:
            return
        for row, value in enumerate(feed.values):
            held = _unfit_in_command(value)
            if held is None:
                continue
            draft, node, offset = use
            line, column = self._locate(node, offset)
            value_problem_at(
                self,
                feed,
                row,
                f"column {shown(feed.column)} holds {held} in this row, and variable"
                f" {{{clipped(variable.name)}}} (declared on line"
                f" {variable.node.start_mark.line + 1}) reaches the command line of step"
                f" {draft.number} ({self.path}:{line + 1}:{column + 1}); fix the row, or use"
                " the variable in a data step's message only",
            )
            return

    def _check_message_size(self, variables: list[_Variable], drafts: list[StepDraft]) -> None:
        """``{message_size}`` is the size of the next message step's message (RFC 1870 §4):
        only a send step may use it, a message step must follow, and that message must be
        whole when the command is sent (it is rendered then, so that the size and the bytes
        sent are the same): no variable in it may be captured from a reply in between."""
        name = MESSAGE_SIZE_VARIABLE
        example = f"such as `MAIL FROM:<a> SIZE={{{name}}}`"
        for variable in variables:
            for used, offset in _uses(variable.template):
                if used == name:
                    self.problem_at(
                        variable.node,
                        offset,
                        f"{{{name}}} is the size of the next message, so only a send step can"
                        f" use it ({example}), not a variable, which is set once per session",
                    )
        for at, draft in enumerate(drafts):
            for node, template in draft.templates:
                for used, offset in _uses(template):
                    if used != name:
                        continue
                    if draft.kind is not StepKind.SEND:
                        kind = "this" if draft.kind is None else draft.kind.value
                        if draft.kind is not None:
                            kind = f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"
                        self.problem_at(
                            node,
                            offset,
                            f"{{{name}}} is the size of the next message, so only a send step"
                            f" can use it ({example}), not {kind} step",
                        )
                    else:
                        self._check_sized_message(node, offset, drafts, at)

    def _check_sized_message(
        self, node: Node, offset: int, drafts: list[StepDraft], at: int
    ) -> None:
        """The checks of :meth:`_check_message_size` on the message after ``drafts[at]``."""
        name = MESSAGE_SIZE_VARIABLE
        captured: dict[str, StepDraft] = {}
        for later in drafts[at:]:
            if later.kind not in MESSAGE_STEP_KINDS:
                for group in later.groups:
                    captured.setdefault(group, later)
                continue
            for _, template in later.templates:
                for used in template.names:
                    if used in captured:
                        by = captured[used]
                        by_text = "this step" if by is drafts[at] else f"step {by.number}"
                        self.problem_at(
                            node,
                            offset,
                            f"{{{name}}} counts the message of step {later.number} when this"
                            f" command is sent, and that message uses {{{clipped(used)}}},"
                            f" captured from the reply to {by_text}, which comes later;"
                            " capture it before this step",
                        )
                        return
            return
        self.problem_at(
            node,
            offset,
            f"{{{name}}} is the size of the next message step's message, and no message step"
            " (data or bdat) follows this one",
        )

    def _check_data_follows_354(self, drafts: list[StepDraft]) -> None:
        # RFC 5321 §4.1.1.4: the message may be sent only after DATA got the 354 go-ahead.
        by_number = {draft.number: draft for draft in drafts}
        for draft in drafts:
            if draft.kind is not StepKind.DATA:
                continue
            before = by_number.get(draft.number - 1)
            if draft.number == 1:
                why = "it is the first step"
            elif before is None or before.kind is None:
                continue  # the step before is invalid and was reported
            elif before.kind is not StepKind.SEND:
                why = f"step {before.number} is a {before.kind.value} step"
            elif before.expect is None or before.expect.codes is None:
                # Without a code to check, a refused DATA (503, 554) would let the message
                # be read as commands.
                why = f"step {before.number} does not expect a reply code"
            elif 354 not in before.expect.codes:
                why = f"step {before.number} expects {before.expect.codes_text}"
            else:
                continue
            self.problem(
                draft.node, f"a data step must follow `send: DATA` with `expect: 354` ({why})"
            )

    def _check_bdat_without_data(self, drafts: list[StepDraft]) -> None:
        # RFC 3030 §2: BDAT replaces DATA; after DATA's 354 the BDAT lines would be read as
        # message text, and the server would wait for a "." that never comes.
        by_number = {draft.number: draft for draft in drafts}
        for draft in drafts:
            before = by_number.get(draft.number - 1)
            if draft.kind is not StepKind.BDAT or before is None:
                continue
            if before.kind is not StepKind.SEND:
                continue
            codes = before.expect.codes if before.expect is not None else None
            if codes is not None and 354 in codes:
                self.problem(
                    draft.node,
                    f"a bdat step sends the message without DATA (RFC 3030): step"
                    f" {before.number} expects 354, after which the chunks would be read as"
                    " message text; remove that step, or use `data:`",
                )

    def _check_nothing_in_the_clear_after_starttls(self, drafts: list[StepDraft]) -> None:
        # RFC 3207 §4: after a 220 to STARTTLS the server expects a TLS handshake, and §4.2: the
        # session starts over inside TLS. A raw `send: STARTTLS` cannot upgrade the connection,
        # so the next steps would go out in the clear, to a server waiting for a ClientHello:
        # the `starttls` step does the upgrade. A test that the server refuses STARTTLS
        # (expect: 454, 502...) is fine, and so is a close after it.
        by_number = {draft.number: draft for draft in drafts}
        for draft in drafts:
            if draft.kind is not StepKind.SEND or (draft.text or "").strip().upper() != "STARTTLS":
                continue
            codes = None if draft.expect is None else draft.expect.codes
            if codes is not None and not any(200 <= code <= 299 for code in codes):
                continue
            after = by_number.get(draft.number + 1)
            if after is None or after.kind in (None, StepKind.CLOSE):
                continue
            accepted = "accepts any reply" if codes is None else "accepts a 2xx reply"
            self.problem(
                draft.node,
                f"this `send: STARTTLS` {accepted}, and step {after.number} would then be sent"
                " in the clear while the server waits for a TLS handshake: a raw send cannot"
                " upgrade the connection. Write `- starttls: true` instead (it sends STARTTLS,"
                " expects 220 and upgrades), or expect a refusal (such as `expect: 454`) to"
                " test one, or end the session here with `close: true`",
            )

    def _check_starttls_steps(self, drafts: list[StepDraft], target: Target | None) -> None:
        """RFC 3207 §4.2: one STARTTLS per session, never inside implicit TLS, and after it the
        session starts over (what was learned before, capabilities too, is forgotten): the
        scenario says EHLO again."""
        starttls = [draft for draft in drafts if draft.kind is StepKind.STARTTLS]
        for extra in starttls[1:]:
            self.problem(
                extra.node,
                f"a session upgrades to TLS once (RFC 3207 §4.2): step {starttls[0].number}"
                " is already a starttls step",
            )
        if starttls and target is not None and target.implicit_tls:
            self.problem(
                starttls[0].node,
                "the target uses implicit TLS, so the session is encrypted from its start:"
                " remove this starttls step, or the target's TLS",
            )
        by_number = {draft.number: draft for draft in drafts}
        for draft in starttls[:1]:
            after = by_number.get(draft.number + 1)
            if after is None or after.kind is None or after.kind is StepKind.CLOSE:
                continue
            verb = (after.text or "").split()[0].upper() if (after.text or "").split() else ""
            if after.kind is StepKind.SEND and verb in ("EHLO", "HELO", "LHLO", "QUIT"):
                continue
            self.problem(
                after.node,
                "after starttls the session starts over (RFC 3207 §4.2: what the server said"
                " before TLS is forgotten): send EHLO again here, e.g. `send: EHLO"
                " client.example`",
            )

    def _check_lmtp(self, drafts: list[StepDraft], protocol: str, names: dict[int, str]) -> None:
        """LMTP's rules (RFC 2033): LHLO, never HELO or EHLO (§4.1: an LMTP server must refuse
        them); ``expect_each`` only in LMTP, naming RCPT steps."""
        rcpt_names = {
            names[d.number]
            for d in drafts
            if d.number in names
            and (d.kind is StepKind.RCPT or (d.kind is StepKind.SEND and _verb(d.text) == "RCPT"))
        }
        for draft in drafts:
            if protocol == "lmtp" and draft.kind is StepKind.SEND:
                verb = _verb(draft.text)
                if verb in ("HELO", "EHLO"):
                    self.problem(
                        draft.node,
                        f"an LMTP scenario says LHLO, not {verb} (RFC 2033 §4.1: an LMTP server"
                        f" refuses HELO and EHLO); write `send: LHLO client.example`",
                    )
            if draft.expect_each_node is None:
                continue
            if protocol != "lmtp":
                self.problem(
                    draft.expect_each_node,
                    "expect_each is for LMTP, where each recipient gets its own reply after the"
                    " message (RFC 2033 §4.2); add `protocol: lmtp`, or use `expect`",
                )
                continue
            for name, node, _expectation in draft.expect_each:
                if name not in rcpt_names:
                    known = ", ".join(sorted(rcpt_names)) or "none"
                    self.problem(
                        node,
                        f"expect_each: {shown(name)} is not the name of an RCPT step of this"
                        f" scenario (its RCPT steps: {known})",
                    )

    def _check_ehlo_after_xclient(self, drafts: list[StepDraft]) -> None:
        """XCLIENT_README: after XCLIENT the server resets the session and greets again (220);
        like after STARTTLS, the scenario says EHLO (or HELO, LHLO) again, or ends."""
        by_number = {draft.number: draft for draft in drafts}
        for draft in drafts:
            if draft.kind is not StepKind.XCLIENT:
                continue
            after = by_number.get(draft.number + 1)
            if after is None or after.kind in (None, StepKind.CLOSE, StepKind.XCLIENT):
                continue
            words = (after.text or "").split()
            if after.kind is StepKind.SEND and words and words[0].upper() in _HELLO_VERBS:
                continue
            self.problem(
                after.node,
                "after xclient the server starts the session over with a new 220 greeting"
                " (XCLIENT_README): send EHLO again here, e.g. `send: EHLO client.example`",
            )

    def _check_nothing_after_close(self, drafts: list[StepDraft]) -> None:
        closes = [draft.number for draft in drafts if draft.kind is StepKind.CLOSE]
        for draft in drafts:
            if closes and draft.number > closes[0]:
                self.problem(
                    draft.node,
                    f"nothing can follow the close step (step {closes[0]}): the connection is"
                    " gone by then; remove this step or move the close step last",
                )
                return

    def _step_names(self, drafts: list[StepDraft]) -> dict[int, str]:
        """Each step's name by step number: the explicit one, else derived and numbered."""
        names: dict[int, str] = {}
        explicit: dict[str, StepDraft] = {}
        for draft in drafts:
            if draft.name is None or draft.name_node is None:
                continue
            first = explicit.setdefault(draft.name, draft)
            if first is not draft:
                self.problem(
                    draft.name_node,
                    f"step name {shown(draft.name)} is already used by step {first.number};"
                    " step names must be unique",
                )
            names[draft.number] = draft.name
        taken = set(explicit) | set(RESERVED_STEP_NAMES)
        repeats: dict[str, int] = {}
        for draft in drafts:
            if draft.number in names or draft.kind is None:
                continue
            base = _derived_name(draft.kind, draft.text)
            count = repeats.get(base, 0) + 1
            name = base if count == 1 else f"{base}#{count}"
            while name in taken:
                count += 1
                name = f"{base}#{count}"
            repeats[base] = count
            taken.add(name)
            names[draft.number] = name
        return names


@dataclass(frozen=True, slots=True)
class _Variable:
    name: str
    text: str  # "" for a value source
    node: Node
    template: Template | None
    value: VariableValue | None = None  # a feed's column, a random number or choice


# The steps that send a command line: a value in it may hold no line break or NUL.
_COMMAND_KINDS = (StepKind.SEND, StepKind.RCPT)


def _unfit_in_command(text: str) -> str | None:
    """What in ``text`` no command line may hold (RFC 5321 §2.3.8, §2.4), or None."""
    if "\r" in text or "\n" in text:
        return "a line break"
    if "\0" in text:
        return "a NUL character"
    return None


_DERIVED_NAMES = {
    StepKind.GREETING: "greeting",
    StepKind.DATA: "message",
    StepKind.CLOSE: "close",
    StepKind.STARTTLS: "starttls",
    StepKind.TLS: "tls",
    StepKind.AUTH: "auth",
    StepKind.XCLIENT: "xclient",
    StepKind.BDAT: "message",
    StepKind.RCPT: "rcpt",
}

# What may follow an xclient step (besides close, or another xclient step).
_HELLO_VERBS = ("EHLO", "HELO", "LHLO", "QUIT")

# The steps that send a message, whose text may use the per-message built-ins.
_MESSAGE_KINDS = (StepKind.DATA, StepKind.BDAT)


def _unknown_variable(name: str, available: Iterable[str]) -> str:
    close = closest(name, sorted(available))
    hint = f", or did you mean {{{clipped(close)}}}?" if close is not None else ""
    return f"unknown variable {{{clipped(name)}}} (declare it under variables:{hint})"


def _per_message_only(name: str, where: str) -> str:
    return (
        f"{{{name}}} is new for each message, so only a data step's message can use it, not {where}"
    )


def _uses(template: Template | None) -> list[tuple[str, int]]:
    """The variables a template uses, each with the offset of its ``{``."""
    return [] if template is None else list(zip(template.names, template.name_offsets, strict=True))


def _verb(text: str | None) -> str:
    """A send step's command verb, upper case (``RCPT TO:<a>`` -> ``RCPT``)."""
    words = (text or "").split()
    return words[0].partition(":")[0].upper() if words else ""


def _derived_name(kind: StepKind, text: str | None) -> str:
    """A step's default name: the command verb for a send (``MAIL FROM:<a>`` -> ``mail``)."""
    if kind is StepKind.SEND:
        words = (text or "").split()
        verb = words[0].partition(":")[0].lower() if words else ""
        return verb if verb and "{" not in verb else "send"
    return _DERIVED_NAMES[kind]
