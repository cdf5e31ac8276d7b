"""From a validated scenario to what sessions run: done once per run, never per session.

Compiling parses every template, compiles every regex and pre-encodes every command whose text
does not depend on a variable, so that a session's hot path is "send these bytes, check this
reply". Only templates that use variables are rendered per session: a generated message's
header (its Message-ID and Date differ per message) is, but never its padding, which
``wire.PaddedMessage`` sends from one block shared by all sessions.

Built-in values come at two rates: once per session (``session_variables``: ``session``,
``uid``, ``run_id``, ``date``) and once per message (``message_variables``: ``message_id``),
which the engine sets before each ``data`` step it renders, so that a session sending several
messages gives each its own.
"""

from __future__ import annotations

import email.utils
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from smtpload.errors import UsageError, clipped, shown
from smtpload.protocol.auth import AuthExchange
from smtpload.protocol.bdat import PaddedOctets, bdat_octets
from smtpload.protocol.expectations import CompiledExpectation, compile_expectation
from smtpload.protocol.lmtp import (
    PROTOCOL_LMTP,
    command_verb,
    part_name,
    transaction_recipients,
)
from smtpload.protocol.message_size import message_octets
from smtpload.protocol.proxy import ProxyHeaderError, ProxyHeaderTemplate
from smtpload.protocol.recipients import (
    RECIPIENT_NUMBER_VARIABLE,
    RecipientSource,
    compile_recipients,
)
from smtpload.protocol.session_random import session_random
from smtpload.protocol.variable_sources import Source, compile_sources
from smtpload.protocol.wire import (
    END_OF_DATA,
    FILLER_LINE,
    PaddedMessage,
    encode_message_text,
    padding_lines,
)
from smtpload.protocol.xclient import XclientError, XclientTemplate
from smtpload.scenario.model import (
    MESSAGE_SIZE_VARIABLE,
    MESSAGE_STEP_KINDS,
    Block,
    BlockKind,
    Chunking,
    Credential,
    ProxySpec,
    Scenario,
    Step,
    StepKind,
)
from smtpload.scenario.patterns import ReplyPattern, compile_capture
from smtpload.scenario.saslprep import SaslprepError, saslprep
from smtpload.scenario.template import Template, parse_template

if TYPE_CHECKING:
    from smtpload.protocol.messages import MessageSource

# protocol/messages.py and the email package's MIME builder are imported where a scenario has a
# generated or real message (message:), when it is compiled: a plain run uses neither
# (tests/test_startup.py). email.utils stays above: a session renders {date} with it, and
# nothing may be imported on a session's path (a run out of files cannot open a module:
# tests/test_limits.py).

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "EXTENDED_HELLO_VERBS",
    "HELLO_VERBS",
    "SENDING_KINDS",
    "TLS_STEP_NAME",
    "CompiledAuth",
    "CompiledScenario",
    "CompiledStep",
    "compile_scenario",
    "generated_message",
    "message_id",
    "undeclared_variables",
]

#: The step timeout when neither the step, --timeout nor the scenario gives one.
DEFAULT_TIMEOUT_S = 30.0

# The right-hand side of generated Message-IDs: a name of smtpload's own, under the .test
# domain reserved for testing (RFC 2606 §2), so no real domain's ids can ever be collided with.
_MESSAGE_ID_DOMAIN = "smtpload.example.test"

# Padding up to this size is built into the message's bytes, so that a small message still
# goes out in one send (the common case, on the hot path); more is a PaddedMessage.
_INLINE_PADDING_BYTES = 16 * 1024

# A message for `data: {size: N}` with no text of its own (RFC 5322 §3.6 minimum: Date, From).
_GENERATED_HEADERS = (
    "From: smtpload <smtpload@example.test>\n"
    "To: <sink@example.test>\n"
    "Subject: smtpload test message {uid}\n"
    "Message-ID: {message_id}\n"
    "Date: {date}\n"
    "\n"
)


@dataclass(frozen=True, slots=True)
class CompiledAuth:
    """An ``auth`` step's mechanism and credentials, as templates (an environment variable's
    value is a template of one literal part). Kept out of every repr: they hold secrets."""

    mechanism: str
    username: Template = field(repr=False)
    secret: Template = field(repr=False)

    def exchange(self, variables: Mapping[str, str]) -> AuthExchange:
        """A new exchange with this session's credentials.

        Raises:
            ValueError: SCRAM-SHA-256 credentials that SASLprep refuses.
        """
        return AuthExchange(
            self.mechanism, self.username.render(variables), self.secret.render(variables)
        )


def _credential(credential: Credential) -> Template:
    return Template((credential.text,)) if credential.literal else parse_template(credential.text)


@dataclass(frozen=True, slots=True)
class CompiledStep:
    """A step ready to run.

    Attributes:
        index: position in the compiled steps (-1 for smtpload's own polite QUIT); the
            ``tls`` handshake steps are compiled steps too.
        name: the histogram label.
        payload: the bytes to send (a ``PaddedMessage`` for a large padded message) when
            they never change; None when the step sends nothing or its text must be rendered
            per session.
        template: the step's text when it uses variables.
        data_size: DATA steps: pad the message to this many bytes.
        expectation: None accepts any reply.
        capture: named groups become variables for later steps.
        timeout_s: how long to wait for this step's reply (or close), in seconds.
        auth: AUTH steps: what the exchange authenticates with.
        verb: SEND steps: the command's verb, upper case (``RCPT``), for LMTP's bookkeeping.
        expect_each: LMTP message steps: (RCPT step name, expectation) pairs judging that
            recipient's reply instead of ``expectation``.
        parts: LMTP message steps: the report names of the per-recipient replies it may get
            (``message/rcpt``, ``message/rcpt#2``), in RCPT order.
        xclient: XCLIENT steps whose attributes use variables: rendered per session.
        octets: BDAT steps: the message's octets when they never change (else ``template``).
        chunking: BDAT steps: how the message is cut into chunks.
        chunk_step: BDAT steps that may send several chunks: the step each chunk but the last
            runs as, named ``NAME/chunk``, with ``expect_chunk`` as its expectation (the
            engine hands it out for those chunks, so they are timed and judged in a row of
            their own).
        sized_message: SEND steps whose text uses ``{message_size}`` of a message rendered per
            session: the index of that message step (the engine renders the message when it
            renders this command). A constant message's size is filled in at compile time.
        recipients: RCPT steps: where each message's recipients come from (the engine hands
            the step out once per recipient).
        group_end: the first step of a pipeline group: the index after the group's last step
            (0 for every other step), so that the I/O layer asks for the group's commands.
        require_pipelining: the EHLO (or LHLO) step before a pipeline group, with
            ``--require-pipelining``: a reply that does not advertise PIPELINING fails it.
        messages: DATA and BDAT steps with a generated or real message source
            (protocol/messages.py): the engine asks it for each message.
    """

    index: int
    kind: StepKind
    name: str
    payload: bytes | PaddedMessage | None
    template: Template | None
    data_size: int | None
    expectation: CompiledExpectation | None
    capture: ReplyPattern | None
    timeout_s: float
    auth: CompiledAuth | None = None
    verb: str = ""
    expect_each: tuple[tuple[str, CompiledExpectation], ...] = ()
    parts: tuple[str, ...] = ()
    xclient: XclientTemplate | None = None
    octets: bytes | PaddedOctets | None = None
    chunking: Chunking | None = None
    chunk_step: CompiledStep | None = None
    sized_message: int | None = None
    recipients: RecipientSource | None = None
    group_end: int = 0
    require_pipelining: bool = False
    messages: MessageSource | None = None

    @property
    def sends(self) -> bool:
        return self.kind in SENDING_KINDS

    def bdat_message(self, variables: Mapping[str, str]) -> bytes | PaddedOctets:
        """A BDAT step's octets in a session with these variables (protocol/bdat.py)."""
        if self.octets is not None:
            return self.octets
        text = self.template.render(variables).encode("utf-8") if self.template else b""
        return bdat_octets(text, self.data_size)

    def render(self, variables: Mapping[str, str]) -> bytes | PaddedMessage:
        """The bytes this step sends in a session with these variables.

        Raises:
            XclientError: an XCLIENT line rendered over 512 octets.
        """
        if self.payload is not None:
            return self.payload
        if self.xclient is not None:
            return self.xclient.command(variables)
        if self.template is None:
            return b""
        text = self.template.render(variables).encode("utf-8")
        if self.kind is StepKind.SEND:
            return text + b"\r\n"
        return _message(text, self.data_size)


@dataclass(frozen=True, slots=True)
class CompiledScenario:
    """A whole scenario ready to run.

    Attributes:
        variables: declared variables' templates (or, for a feed's column, a random number or
            choice, their sources: variable_sources.py), in order, after --var overrides.
        uses_variables: False when no step needs per-session values (the fast path).
        uses_date: whether any template uses the ``date`` built-in (costly to format).
        timeout_s: the default timeout (--timeout, the scenario's, or 30 s); it bounds connect.
        proxy: the PROXY protocol header each session writes first, or None.
        seed: the run's seed: each session's random draws come from ``session_random(seed,
            session)`` (protocol/session_random.py).
        blocks: the scenario's ``repeat`` and ``pipeline`` blocks over these (compiled) steps'
            indices, ordered by start, outer first.
        draws: whether a session draws random numbers (a drawn variable, a ranged repeat or
            recipient count, a feed at random): only then is its generator made.
        require_pipelining: ``--require-pipelining``: a session whose server did not advertise
            PIPELINING fails at the EHLO before its first pipeline group instead of running
            the group in lock-step.
    """

    name: str
    path: str
    steps: tuple[CompiledStep, ...]
    variables: tuple[tuple[str, Template | Source], ...]
    uses_variables: bool
    uses_date: bool
    timeout_s: float = DEFAULT_TIMEOUT_S
    protocol: str = "smtp"
    proxy: ProxyHeaderTemplate | None = None
    seed: int = 0
    require_pipelining: bool = False
    blocks: tuple[Block, ...] = ()
    draws: bool = False
    # The repeats that start at each step index, outermost first: what a session's cursor
    # looks up as it moves (engine.py), once per step, instead of a walk over every block.
    repeat_starts: Mapping[int, tuple[Block, ...]] = field(init=False, repr=False, compare=False)
    #: Whether any step starts a pipeline group: asked by every session's engine as it starts.
    has_pipeline_groups: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        starts: dict[int, tuple[Block, ...]] = {}
        for block in self.blocks:  # ordered by start, outer first
            if block.kind is BlockKind.REPEAT:
                starts[block.start] = (*starts.get(block.start, ()), block)
        object.__setattr__(self, "repeat_starts", starts)
        groups = any(block.kind is BlockKind.PIPELINE for block in self.blocks)
        object.__setattr__(self, "has_pipeline_groups", groups)

    @property
    def least_messages_per_session(self) -> int:
        """The fewest messages a session sends: each DATA or BDAT step times the least count
        of every repeat around it (``--workers auto`` calls a run of many a load run)."""
        total = 0
        for index, step in enumerate(self.steps):
            if step.kind not in (StepKind.DATA, StepKind.BDAT):
                continue
            times = 1
            for block in self.blocks:
                if block.kind is BlockKind.REPEAT and block.start <= index < block.end:
                    times *= block.count_min
            total += times
        return total

    def session_random(self, session: int) -> random.Random:
        """The random generator of session number ``session`` (session_random.py)."""
        return session_random(self.seed, session)

    @property
    def uses_tls(self) -> bool:
        """Whether a session does a TLS handshake (a starttls step, or implicit TLS)."""
        return any(step.kind is StepKind.TLS for step in self.steps)

    @property
    def step_names(self) -> tuple[str, ...]:
        """Every histogram's name but ``connect``, in order: a bdat step's ``NAME/chunk``
        right before its ``NAME``, an LMTP message's per-recipient parts right after it."""
        return tuple(
            name
            for step in self.steps
            for name in (
                *(() if step.chunk_step is None else (step.chunk_step.name,)),
                step.name,
                *step.parts,
            )
        )

    def session_variables(
        self, session: int, run_id: str, rng: random.Random | None = None
    ) -> dict[str, str]:
        """The variables of one session: built-ins, then declared variables in order.

        ``rng``: the session's generator (``session_random``), which the drawn variables draw
        from, in order; made here when not given and a variable needs it. A caller that draws
        more for the session (repeat counts, recipients) passes the one it draws from, so that
        the session's draws come from one generator, never two alike.
        """
        values = {"session": str(session), "uid": f"{run_id}.{session}", "run_id": run_id}
        if self.uses_date:
            values["date"] = email.utils.formatdate(localtime=True)
        rows: dict[int, int] = {}  # each feed group's row in this session
        for name, template in self.variables:
            if isinstance(template, Template):
                values[name] = template.render(values)
                continue
            if rng is None:
                rng = self.session_random(session)
            values[name] = template.value(session, rng, rows)
        return values

    @staticmethod
    def message_variables(values: dict[str, str], message: int) -> None:
        """Set the per-message built-ins in a session's ``values`` (from
        ``session_variables``) for its ``message``-th message (1-based)."""
        values["message_id"] = message_id(values["uid"], message)
        values["message_number"] = str(message)


def message_id(uid: str, message: int) -> str:
    """A Message-ID value (RFC 5322 §3.6.4 ``"<" id-left "@" id-right ">"``), unique per message
    of a run: the session's ``uid`` (``<run_id>.<session>``) and the message's number in the
    session. Every part is letters, digits, ``-`` and ``.``: a dot-atom, as §3.6.4 asks."""
    return f"<{uid}.{message}@{_MESSAGE_ID_DOMAIN}>"


def _message(text: bytes, size: int | None) -> bytes | PaddedMessage:
    """A DATA step's message, ready to follow a 354, padded to ``size`` bytes when given.

    The size counts the message's CRLF form before dot-stuffing: generated body lines are
    appended until it is reached (a message already that long is sent as it is).
    """
    head = encode_message_text(text)
    if size is None:
        return head + END_OF_DATA
    # Line ends as encode_message_text makes them (a bare CR is a line end too), so that the
    # size counted here is the size sent.
    crlf = text.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    if crlf and not crlf.endswith(b"\r\n"):
        crlf += b"\r\n"
    full_lines, last_line = padding_lines(size - len(crlf))
    if full_lines * len(FILLER_LINE) <= _INLINE_PADDING_BYTES:
        return head + FILLER_LINE * full_lines + last_line + END_OF_DATA
    return PaddedMessage(head, full_lines, last_line + END_OF_DATA)


def _timeout(step: Step | None, cli_timeout_s: float | None, scenario: Scenario) -> float:
    # A step's own timeout wins, then --timeout, then the scenario's default, then 30 s.
    own = step.timeout_s if step is not None else None
    for candidate in (own, cli_timeout_s, scenario.timeout_s):
        if candidate is not None:
            return candidate
    return DEFAULT_TIMEOUT_S


def generated_message(step: Step) -> str:
    """The message text of a DATA step: its own, or generated headers when only a size is set."""
    return step.text if step.text is not None else _GENERATED_HEADERS


def undeclared_variables(scenario: Scenario, names: Iterable[str]) -> list[str]:
    """The ``names`` the scenario declares no variable of, sorted (what --var may not set)."""
    return sorted(set(names) - {name for name, _ in scenario.variables})


#: The kinds of step that send a command or a message (and so must find nothing waiting
#: before they do: net/client.py looks for replies out of turn before each).
SENDING_KINDS = frozenset(
    {
        StepKind.SEND,
        StepKind.DATA,
        StepKind.STARTTLS,
        StepKind.AUTH,
        StepKind.XCLIENT,
        StepKind.BDAT,
    }
)

#: The name of the TLS handshake's step (reserved: step_syntax.RESERVED_STEP_NAMES).
TLS_STEP_NAME = "tls"

#: What a starttls step sends (RFC 3207 §4).
_STARTTLS_COMMAND = b"STARTTLS\r\n"


def _tls_step(index: int, timeout_s: float) -> CompiledStep:
    """The TLS handshake as a timed step of its own: it sends and expects nothing SMTP."""
    return CompiledStep(
        index=index,
        kind=StepKind.TLS,
        name=TLS_STEP_NAME,
        payload=None,
        template=None,
        data_size=None,
        expectation=None,
        capture=None,
        timeout_s=timeout_s,
    )


def _check_saslprep(
    step: Step, auth: CompiledAuth, constants: Mapping[str, str], overrides: Mapping[str, str]
) -> None:
    """Refuse, before the run, a SCRAM credential made from variables that SASLprep refuses
    and that is the same in every session. (The scenario's reader refused the ones written in
    the file or read from the environment, at their place; one that depends on the session is
    refused when it is rendered, as that session's failure.)

    Raises:
        UsageError: naming the step and the variables, never quoting the value.
    """
    for what, template in (("user name", auth.username), ("password", auth.secret)):
        if template.is_constant or not all(name in constants for name in template.names):
            continue
        try:
            saslprep(template.render(constants))
        except SaslprepError as error:
            names = sorted(set(template.names))
            given = [f"--var {name}" for name in sorted(overrides)]
            raise UsageError(
                f"step {shown(step.name)} (line {step.line}): SCRAM-SHA-256 refuses the {what}"
                f" made from {', '.join('{' + name + '}' for name in names)}"
                f" (SASLprep, RFC 4013/RFC 7613): {error.reason}; check "
                + ", ".join([*given, "the variables it uses"])
                + " (the value is not shown)"
            ) from None


def _proxy(spec: ProxySpec) -> ProxyHeaderTemplate:
    def template(text: str | None) -> Template | None:
        return None if text is None else parse_template(text)

    return ProxyHeaderTemplate(
        version=spec.version,
        local=spec.local,
        source=template(spec.source),
        source_port=template(spec.source_port),
        destination=template(spec.destination),
        destination_port=template(spec.destination_port),
    )


def _xclient(
    step: Step, path: str, constants: Mapping[str, str]
) -> tuple[bytes | None, XclientTemplate | None]:
    """An xclient step's line when its attributes are constant, else its template; a line
    made of text and ``constants`` alone (``--var`` values) is checked here, once per run.

    Raises:
        UsageError: such a line is over 512 octets, at the step's FILE:LINE:COL.
    """
    xclient = XclientTemplate(
        tuple((name, parse_template(text)) for name, text in step.xclient or ())
    )
    names = [name for _, template in xclient.attributes for name in template.names]
    try:
        if xclient.is_constant:
            return xclient.command({}), None
        if all(name in constants for name in names):
            xclient.command(constants)
    except XclientError as error:
        raise UsageError(f"{path}:{step.line}:{step.column}: xclient: {error}") from None
    return None, xclient


def _check_command_overrides(
    scenario: Scenario, variables: Iterable[tuple[str, Template]], overrides: Mapping[str, str]
) -> None:
    """Refuse a --var value with a line break or a NUL that a send step would put in its
    command line: the line break would end the command there and send the rest as a command
    of its own (RFC 5321 §2.3.8), and NUL is no text (RFC 5321 §2.4, RFC 6531 §3.3). The
    scenario's reader refuses the same in a declared variable's text.

    Raises:
        UsageError: naming the --var and the step.
    """
    unfit: dict[str, str] = {}  # variable -> the --var whose value it holds
    for name, template in variables:
        value = overrides.get(name)
        if value is not None and ("\r" in value or "\n" in value or "\0" in value):
            unfit[name] = name
        else:
            source = next((unfit[used] for used in template.names if used in unfit), None)
            if source is not None:
                unfit[name] = source
    if not unfit:
        return
    for step in scenario.steps:
        if step.kind is not StepKind.SEND:
            continue
        used = next((n for n in parse_template(step.text or "").names if n in unfit), None)
        if used is not None:
            via = "" if unfit[used] == used else f" through {{{used}}}"
            raise UsageError(
                f"--var {clipped(unfit[used])}: the value holds a line break or a NUL, which no"
                f" command line may carry, and step {shown(step.name)} (line {step.line}) sends"
                f" it{via} in one; give a value of one line"
            )


def _size_messages(steps: list[CompiledStep], blocks: Iterable[Block]) -> list[CompiledStep]:
    """Give each send step that uses ``{message_size}`` the size of the next message step's
    message: filled in now when that message is the same in every session (a constant or a
    padded one without variables), else ``sized_message``, for the engine to count it on the
    message it renders for the session (message_size.py). The scenario's reader made sure a
    message step follows.

    When a repeat's edge lies between the step and that message (a MAIL at a repeat's end,
    whose message starts the next run; a message inside a repeat that may run 0 times), the
    message that comes next depends on the run: the engine finds it as it goes
    (``SessionEngine._upcoming_message``), so nothing is filled in here.

    Raises:
        UsageError: no message step follows (a scenario not read from a file).
    """
    sized: list[CompiledStep] = []
    for at, step in enumerate(steps):
        template = step.template
        if template is not None and MESSAGE_SIZE_VARIABLE in template.names:
            message = next(
                (later for later in steps[at:] if later.kind in MESSAGE_STEP_KINDS), None
            )
            if message is None:  # the scenario's reader refuses it; a Scenario built in code
                raise UsageError(
                    f"step {shown(step.name)} uses {{message_size}}, and no message step (data"
                    " or bdat) follows it"
                )
            bdat = message.kind is StepKind.BDAT
            constant = message.octets if bdat else message.payload
            across_repeat = any(
                block.kind is BlockKind.REPEAT
                and (at < block.start <= message.index or at < block.end <= message.index)
                for block in blocks
            )
            if constant is None or across_repeat:
                step = replace(step, sized_message=message.index)
            else:
                octets = message_octets(constant, stuffed=not bdat)
                step = _filled(step, template, str(octets))
        sized.append(step)
    return sized


def _filled(step: CompiledStep, template: Template, octets: str) -> CompiledStep:
    """``step`` with ``{message_size}`` written in as ``octets``; pre-encoded when nothing
    else in it varies."""
    parts = [template.parts[0]]
    for name, literal in zip(template.parts[1::2], template.parts[2::2], strict=True):
        if name == MESSAGE_SIZE_VARIABLE:
            parts[-1] += octets + literal
        else:
            parts += [name, literal]
    filled = Template(tuple(parts))
    if filled.is_constant:
        return replace(step, payload=parts[0].encode("utf-8") + b"\r\n", template=None)
    return replace(step, template=filled)


def compile_scenario(
    scenario: Scenario,
    *,
    timeout_s: float | None = None,
    overrides: Mapping[str, str] | None = None,
    implicit_tls: bool = False,
    seed: int = 0,
    require_pipelining: bool = False,
) -> CompiledScenario:
    """Compile a validated scenario.

    The TLS handshake becomes a step of its own, ``tls``: right after a ``starttls`` step
    (with that step's timeout), or first of all with ``implicit_tls`` (RFC 8314).

    Args:
        timeout_s: the --timeout value, if given.
        overrides: --var values; each must name a declared variable. They are taken literally.
        implicit_tls: TLS from the connection's first byte (``--tls implicit``, ``smtps://``).
        seed: the run's seed of each session's random draws (``--seed``).
        require_pipelining: ``--require-pipelining`` (CompiledScenario.require_pipelining).

    Raises:
        UsageError: an override names a variable the scenario does not declare, or
            ``implicit_tls`` is asked of a scenario with a starttls step.
    """
    if implicit_tls and any(step.kind is StepKind.STARTTLS for step in scenario.steps):
        raise UsageError(
            "implicit TLS (--tls implicit, smtps://) encrypts the session from its start, and"
            " the scenario has a starttls step (RFC 3207 §4.2: no STARTTLS inside TLS); drop"
            " one of them"
        )
    overrides = dict(overrides or {})
    declared = [name for name, _ in scenario.variables]
    unknown = undeclared_variables(scenario, overrides)
    if unknown:
        raise UsageError(
            f"--var {clipped(unknown[0])}: the scenario declares no variable {shown(unknown[0])}"
            + (f" (it declares: {', '.join(declared)})" if declared else "")
            + "; declare it under 'variables:' to set it from the command line"
        )
    sources = compile_sources(value for _, value in scenario.variables)
    variables: tuple[tuple[str, Template | Source], ...] = tuple(
        (
            name,
            Template((overrides[name],))
            if name in overrides
            else source
            if source is not None
            else parse_template(str(value)),
        )
        for (name, value), source in zip(scenario.variables, sources, strict=True)
    )
    templates = [(name, t) for name, t in variables if isinstance(t, Template)]
    _check_command_overrides(scenario, templates, overrides)
    # The variables whose values are the same in every session: --var values, and declared
    # variables made of them and of text alone (no built-in is: each is per session, and so
    # is a drawn variable).
    constants: dict[str, str] = {}
    for name, value_template in templates:
        if all(used in constants for used in value_template.names):
            constants[name] = value_template.render(constants)
    lmtp = scenario.protocol == PROTOCOL_LMTP
    recipients = transaction_recipients(
        [
            (step.name, _verb(step), step.kind in (StepKind.DATA, StepKind.BDAT))
            for step in scenario.steps
            if lmtp
        ]
    )
    steps: list[CompiledStep] = []
    if implicit_tls:
        steps.append(_tls_step(0, _timeout(None, timeout_s, scenario)))
    uses_variables = False
    uses_date = any("date" in t.names for _, t in templates)
    compiled_at: list[int] = []  # scenario step index -> its compiled index
    for step in scenario.steps:
        compiled_at.append(len(steps))
        template = None
        payload: bytes | PaddedMessage | None = None
        octets: bytes | PaddedOctets | None = None
        if step.kind is StepKind.STARTTLS:
            payload = _STARTTLS_COMMAND
        elif step.kind is StepKind.SEND:
            template = parse_template(step.text or "")
        elif step.kind in (StepKind.DATA, StepKind.BDAT) and step.message is None:
            template = parse_template(generated_message(step))
        rcpt_source = None
        if step.recipients is not None:
            rcpt_source = compile_recipients(step.recipients)
            names = rcpt_source.names
            uses_variables = uses_variables or any(n != RECIPIENT_NUMBER_VARIABLE for n in names)
            uses_date = uses_date or "date" in names
        messages = None
        if step.message is not None:
            from smtpload.protocol.messages import compile_messages

            messages = compile_messages(step.message, stuffed=step.kind is StepKind.DATA)
            uses_variables = True  # a Message-ID from the session's uid, templates
        xclient = None
        if step.kind is StepKind.XCLIENT:
            payload, xclient = _xclient(step, scenario.path, constants)
            uses_variables = uses_variables or xclient is not None
        if template is not None:
            uses_date = uses_date or "date" in template.names
            if template.is_constant:
                constant = template.parts[0].encode("utf-8")
                if step.kind is StepKind.SEND:
                    payload = constant + b"\r\n"
                elif step.kind is StepKind.BDAT:
                    octets = bdat_octets(constant, step.data_size)
                else:
                    payload = _message(constant, step.data_size)
                template = None
            else:
                uses_variables = True
        capture = compile_capture(step.capture) if step.capture is not None else None
        uses_variables = uses_variables or capture is not None
        auth = None
        if step.auth is not None:
            auth = CompiledAuth(
                step.auth.mechanism,
                _credential(step.auth.username),
                _credential(step.auth.secret),
            )
            if auth.mechanism == "SCRAM-SHA-256":
                _check_saslprep(step, auth, constants, overrides)
            if not (auth.username.is_constant and auth.secret.is_constant):
                uses_variables = True
        expectation = compile_expectation(step.expect) if step.expect else None
        timeout = _timeout(step, timeout_s, scenario)
        chunk_step = None
        if step.chunking is not None and step.chunking.several:
            chunk_expect = step.chunking.expect_chunk
            chunk_step = CompiledStep(
                index=len(steps),
                kind=StepKind.BDAT,
                name=f"{step.name}/chunk",
                payload=None,
                template=None,
                data_size=None,
                expectation=compile_expectation(chunk_expect) if chunk_expect else None,
                capture=None,
                timeout_s=timeout,
                chunking=step.chunking,
            )
        steps.append(
            CompiledStep(
                index=len(steps),
                kind=step.kind,
                name=step.name,
                payload=payload,
                template=template,
                data_size=step.data_size,
                expectation=expectation,
                capture=capture,
                timeout_s=timeout,
                auth=auth,
                verb=_verb(step),
                expect_each=tuple(
                    (name, compile_expectation(expect)) for name, expect in step.expect_each
                ),
                parts=tuple(part_name(step.name, rcpt) for rcpt in recipients.get(step.name, ())),
                xclient=xclient,
                octets=octets,
                chunking=step.chunking,
                chunk_step=chunk_step,
                recipients=rcpt_source,
                messages=messages,
            )
        )
        if step.kind is StepKind.STARTTLS:
            steps.append(_tls_step(len(steps), _timeout(step, timeout_s, scenario)))
    proxy = None if scenario.proxy is None else _proxy(scenario.proxy)
    if proxy is not None and scenario.proxy is not None:
        try:
            proxy.check(constants)
        except ProxyHeaderError as error:
            spec = scenario.proxy
            raise UsageError(f"{scenario.path}:{spec.line}:{spec.column}: proxy: {error}") from None
        uses_variables = uses_variables or bool(proxy.names)
        uses_date = uses_date or "date" in proxy.names
    compiled_at.append(len(steps))
    blocks = tuple(
        replace(block, start=compiled_at[block.start], end=compiled_at[block.end])
        for block in scenario.blocks
    )
    steps = _size_messages(steps, blocks)
    steps = _mark_groups(steps, blocks, require_pipelining=require_pipelining)
    return CompiledScenario(
        name=scenario.name,
        path=scenario.path,
        steps=tuple(steps),
        variables=variables,
        uses_variables=uses_variables,
        uses_date=uses_date,
        timeout_s=_timeout(None, timeout_s, scenario),
        protocol=scenario.protocol,
        proxy=proxy,
        seed=seed,
        require_pipelining=require_pipelining,
        blocks=blocks,
        draws=_draws(variables, steps, blocks),
    )


def _draws(
    variables: Iterable[tuple[str, object]], steps: Iterable[CompiledStep], blocks: Iterable[Block]
) -> bool:
    """Whether a session of these draws from its generator (CompiledScenario.draws)."""
    return (
        any(not isinstance(value, Template) for _, value in variables)
        or any(block.count_min != block.count_max for block in blocks)
        or any(step.recipients is not None and step.recipients.needs_random for step in steps)
    )


def _verb(step: Step) -> str:
    """A command step's verb, upper case (``RCPT`` for an rcpt step); "" for the others."""
    if step.kind is StepKind.RCPT:
        return "RCPT"
    return command_verb(step.text or "") if step.kind is StepKind.SEND else ""


#: The hellos whose reply lists the extensions, PIPELINING among them (RFC 5321 §4.1.1.1;
#: LMTP's LHLO, RFC 2033 §4.1); and all of them, HELO's too (its reply lists none).
EXTENDED_HELLO_VERBS = frozenset({"EHLO", "LHLO"})
HELLO_VERBS = EXTENDED_HELLO_VERBS | {"HELO"}


def _mark_groups(
    steps: list[CompiledStep], blocks: tuple[Block, ...], *, require_pipelining: bool
) -> list[CompiledStep]:
    """Mark each pipeline group's first step with the group's end, and with
    ``require_pipelining`` the hello before each group (the latest EHLO, LHLO or HELO step
    before it, in step order), whose reply must then advertise PIPELINING (RFC 2920 §3).

    Raises:
        UsageError: with ``require_pipelining``, a group that no hello comes before: nothing
            would ever ask the server for PIPELINING.
    """
    marked = list(steps)
    for block in blocks:
        if block.kind is not BlockKind.PIPELINE:
            continue
        marked[block.start] = replace(marked[block.start], group_end=block.end)
        if require_pipelining:
            hello = next(
                (at for at in range(block.start - 1, -1, -1) if marked[at].verb in HELLO_VERBS),
                None,
            )
            if hello is None:
                raise UsageError(
                    f"--require-pipelining: no EHLO comes before the pipeline group that starts"
                    f" with step {shown(marked[block.start].name)}, so the session never asks"
                    " for PIPELINING (RFC 2920 §3); add `- send: EHLO client.example` before it"
                )
            marked[hello] = replace(marked[hello], require_pipelining=True)
    return marked
