"""The grammar of one step: a mapping from the `steps:` list in, a ``StepDraft`` out.

``loader.py`` walks the file and hands each item of `steps:` here; this module reads its one
action (``greeting``, ``send``, ``data``, ``close``, ``starttls``, ``auth`` or ``xclient``) and
the step's options (``name``, ``expect``, ``capture``, ``timeout``), reporting what is wrong
through the caller's ``yaml_nodes.NodeReader``. It also holds the value readers the top level
shares with steps (a non-empty name, a positive number of seconds, a ``{template}``). A draft is
kept even when parts of it are invalid, so that the checks across steps (variables used, data
after 354, nothing after close, unique step names), which are ``loader.py``'s, still see it. The
``expect`` values themselves are ``expectation_syntax.py``'s; this module knows nothing of other
steps or files.
"""

from __future__ import annotations

from dataclasses import dataclass

from smtpload.errors import clipped, shown
from smtpload.scenario.bdat_syntax import (
    BDAT_CHUNK_DEFAULT,
    check_chunk_sizes,
    message_length,
    read_bdat,
)
from smtpload.scenario.durations import DurationError, parse_duration
from smtpload.scenario.expectation_syntax import parse_expectation
from smtpload.scenario.message_syntax import (
    MESSAGE_KEYS,
    byte_count,
    read_message,
    uses_message_syntax,
)
from smtpload.scenario.model import (
    AUTH_MECHANISMS,
    BUILTIN_VARIABLES,
    MAX_DATA_SIZE_BYTES,
    XCLIENT_ATTRIBUTES,
    AuthSpec,
    Chunking,
    Credential,
    Expectation,
    MessageSpec,
    RecipientSpec,
    StepKind,
)
from smtpload.scenario.patterns import PatternError, compile_capture
from smtpload.scenario.rcpt_syntax import RCPT_DEFAULT, read_rcpt
from smtpload.scenario.saslprep import SaslprepError, saslprep
from smtpload.scenario.template import (
    Template,
    TemplateSyntaxError,
    is_variable_name,
    not_a_variable_name,
    parse_template,
)
from smtpload.scenario.yaml_nodes import BOOL_TAG, TEXT_TAGS, NodeReader, is_blank, is_true
from smtpload.scenario.yaml_tree import MappingNode, Node, ScalarNode, SequenceNode

__all__ = [
    "RESERVED_STEP_NAME",
    "RESERVED_STEP_NAMES",
    "StepDraft",
    "positive_seconds",
    "read_name",
    "read_step",
    "read_template",
]

RESERVED_STEP_NAME = "connect"  # the TCP connect is always timed as a step of this name

#: Names the reports use beside the steps', so that no step may take them (lower case).
RESERVED_STEP_NAMES: dict[str, str] = {
    RESERVED_STEP_NAME: "the TCP connect",
    "session": "the whole session's row in the reports",
    "start_delay": "open-loop runs' start delays",
    "tls": "the TLS handshake (after starttls, or first with implicit TLS)",
}

_ACTIONS = ("greeting", "send", "data", "bdat", "close", "starttls", "auth", "xclient", "rcpt")
_STEP_OPTIONS = ("name", "expect", "capture", "timeout", "expect_each", "expect_chunk")
_DATA_KEYS = ("message", "size")
# RFC 5321 §4.3.2: connection establishment succeeds with 220, the end of mail data with 250.
_GREETING_DEFAULT = Expectation(codes=frozenset({220}), codes_text="220")
_DATA_DEFAULT = Expectation(codes=frozenset({250}), codes_text="250")
# RFC 3207 §4: "220 Ready to start TLS"; any other reply means no TLS.
STARTTLS_DEFAULT = Expectation(codes=frozenset({220}), codes_text="220")
# RFC 4954 §6: 235 2.7.0 Authentication Succeeded.
_AUTH_DEFAULT = Expectation(codes=frozenset({235}), codes_text="235")
_AUTH_KEYS = ("mechanism", "username", "password", "token")
# XCLIENT_README: the server answers XCLIENT with a new 220 greeting.
_XCLIENT_DEFAULT = Expectation(codes=frozenset({220}), codes_text="220")


@dataclass(slots=True)
class StepDraft:
    """One step as read, kept even when parts of it are invalid for the checks across steps.

    ``templates`` holds the step's templates that use variables (the checks across steps look
    at nothing else); a file may hold a hundred thousand drafts, so they are kept small.
    """

    number: int  # 1-based, for messages
    node: MappingNode
    kind: StepKind | None = None
    name: str | None = None
    name_node: Node | None = None
    text: str | None = None
    data_size: int | None = None
    expect: Expectation | None = None
    greeting_expects: bool = False  # `greeting:` held an expectation, so `expect:` may not
    capture: str | None = None
    capture_node: Node | None = None
    groups: tuple[str, ...] = ()
    timeout_s: float | None = None
    templates: tuple[tuple[Node, Template], ...] = ()
    auth: AuthSpec | None = None
    secret_nodes: tuple[Node, ...] = ()  # templates whose text no message may quote
    # LMTP: (RCPT step name, its node, expectation); the loader checks the names.
    expect_each: tuple[tuple[str, Node, Expectation], ...] = ()
    expect_each_node: Node | None = None
    xclient: tuple[tuple[str, str], ...] | None = None
    chunking: Chunking | None = None  # bdat steps only
    recipients: RecipientSpec | None = None  # rcpt steps only (rcpt_syntax.py)
    message: MessageSpec | None = None  # data steps' generated or real messages


# -- values shared with the top level ------------------------------------------------------


def positive_seconds(node: Node, reader: NodeReader, what: str) -> float | None:
    """A timeout: a number of seconds greater than 0, or a duration with its unit (``500ms``,
    ``30s``, ``5m``, ``1h``: scenario/durations.py, as on the command line); or None after
    reporting it."""
    if isinstance(node, ScalarNode) and node.tag in TEXT_TAGS and not is_blank(node):
        try:
            return parse_duration(node.value)
        except DurationError as error:
            reader.problem(node, f"{what} {clipped(node.value)!r} {error}")
            return None
    seconds = reader.number(node, what)
    if seconds is not None and seconds <= 0:
        reader.problem(node, f"{what} must be a number of seconds greater than 0")
        return None
    return None if seconds is None else float(seconds)


def read_template(node: Node, reader: NodeReader, text: str) -> Template | None:
    """``text`` (the value of ``node``) as a template, or None after reporting where it breaks."""
    try:
        return parse_template(text)
    except TemplateSyntaxError as exc:
        reader.problem_at(node, exc.offset, exc.message)
        return None


def read_name(node: Node, reader: NodeReader, what: str) -> str | None:
    """A scenario's or a step's name: text that is not empty or only spaces."""
    name = reader.text(node, what)
    if name is not None and not name.strip():
        reader.problem(node, f"{what} must not be empty")
        return None
    return name


# -- one step ------------------------------------------------------------------------------


def read_step(node: Node, number: int, reader: NodeReader) -> StepDraft | None:
    """Read one item of `steps:`.

    Args:
        node: the item.
        number: its 1-based place in the list, for messages.
        reader: reports problems and reads values.

    Returns:
        The draft, with the parts that were valid; None when the item is not a mapping at all.
    """
    if not isinstance(node, MappingNode):
        example = "send: QUIT"
        if isinstance(node, ScalarNode) and node.tag in TEXT_TAGS and node.value:
            example = f"send: {clipped(node.value)}"
        reader.problem(
            node,
            f"step {number} must be a mapping with one action (greeting, send, data, close,"
            f" starttls, auth or xclient), such as `- {example}`",
        )
        return None
    draft = StepDraft(number, node)
    keys = reader.mapping(node, f"in step {number}", _ACTIONS + _STEP_OPTIONS)
    actions = [key for key in keys if key in _ACTIONS]
    # An unknown key was most likely meant as the action, and was reported with a hint.
    if not actions and len(keys) == len(node.value):
        reader.problem(node, f"step {number} has no action; give one of {', '.join(_ACTIONS)}")
    for extra in actions[1:]:
        reader.problem(
            keys[extra][0],
            f"step {number} has two actions, {actions[0]!r} and {extra!r}; give each its own step",
        )
    if len(actions) == 1:
        draft.kind = StepKind(actions[0])
        _action(draft, keys[actions[0]][1], reader)
    if "name" in keys:
        draft.name_node = keys["name"][1]
        draft.name = read_name(draft.name_node, reader, "name")
        reserved = RESERVED_STEP_NAMES.get((draft.name or "").lower())
        if draft.name is not None and reserved is not None:
            reader.problem(
                draft.name_node,
                f"step name {draft.name!r} is reserved for {reserved}; choose another",
            )
            draft.name = None
        elif draft.name is not None and "/" in draft.name:
            # Reports name a step's extra replies NAME/PART (LMTP's message/rcpt#2, BDAT's
            # message/chunk), so a "/" of the user's own could collide with one.
            reader.problem(
                draft.name_node,
                f"step name {shown(draft.name)} must not contain '/': reports name the parts of"
                " a step NAME/PART (a bdat step's message/chunk, LMTP's per-recipient replies"
                " such as message/rcpt#2)",
            )
            draft.name = None
    if "expect" in keys:
        _expect(draft, *keys["expect"], reader)
    if "capture" in keys:
        _capture(draft, *keys["capture"], reader)
    if "timeout" in keys:
        draft.timeout_s = positive_seconds(keys["timeout"][1], reader, "timeout")
    if "expect_each" in keys:
        _expect_each(draft, *keys["expect_each"], reader)
    if "expect_chunk" in keys:
        _expect_chunk(draft, *keys["expect_chunk"], reader)
    return draft


def _expect_each(draft: StepDraft, key: Node, node: Node, reader: NodeReader) -> None:
    """LMTP's per-recipient expectations: ``{RCPT_STEP_NAME: EXPECTATION, ...}`` (the names
    are checked against the scenario's RCPT steps by the loader)."""
    draft.expect_each_node = key
    if draft.kind not in (StepKind.DATA, StepKind.BDAT):
        reader.problem(
            key,
            "expect_each belongs on the data or bdat step of an LMTP scenario: it judges each"
            " recipient's reply after the message (RFC 2033 §4.2, §4.3)",
        )
        return
    if not isinstance(node, MappingNode) or not node.value:
        reader.problem(
            node,
            "expect_each takes a mapping from RCPT step names to expectations, such as"
            ' `expect_each: {rcpt: 250, "rcpt#2": 452}`',
        )
        return
    entries = []
    for name, (name_node, value_node) in reader.mapping(node, "in expect_each", None).items():
        expectation = parse_expectation(value_node, reader, f"expect_each: {clipped(name)}")
        if expectation is not None:
            entries.append((name, name_node, expectation))
    draft.expect_each = tuple(entries)


def _expect_chunk(draft: StepDraft, key: Node, node: Node, reader: NodeReader) -> None:
    if draft.kind is not StepKind.BDAT:
        reader.problem(key, "expect_chunk is for bdat steps: the reply to each chunk but the last")
        return
    expect = parse_expectation(node, reader, "expect_chunk")
    if draft.chunking is not None and expect is not None:
        c = draft.chunking
        draft.chunking = Chunking(c.chunk_size, c.chunks, c.last_empty, expect)


def _action(draft: StepDraft, node: Node, reader: NodeReader) -> None:
    if draft.kind is StepKind.GREETING:
        if isinstance(node, ScalarNode) and node.tag == BOOL_TAG:
            if not is_true(node):
                reader.problem(node, "greeting takes `true` or an expectation such as 220")
            draft.expect = _GREETING_DEFAULT
        else:
            draft.expect = parse_expectation(node, reader, "greeting")
            draft.greeting_expects = True
    elif draft.kind is StepKind.STARTTLS:
        _starttls(draft, node, reader)
    elif draft.kind is StepKind.SEND:
        draft.text = _send(draft, node, reader)
    elif draft.kind is StepKind.DATA:
        _data(draft, node, reader)
        draft.expect = _DATA_DEFAULT
    elif draft.kind is StepKind.AUTH:
        draft.auth = _auth(draft, node, reader)
        draft.expect = _AUTH_DEFAULT
    elif draft.kind is StepKind.XCLIENT:
        draft.xclient = _xclient(draft, node, reader)
        draft.expect = _XCLIENT_DEFAULT
    elif draft.kind is StepKind.BDAT:
        _bdat(draft, node, reader)
        draft.expect = _DATA_DEFAULT
    elif draft.kind is StepKind.RCPT:
        draft.recipients = read_rcpt(
            node, reader, lambda at, text: _add_template(at, text, draft, reader)
        )
        draft.expect = RCPT_DEFAULT
    elif draft.kind is StepKind.CLOSE and not is_true(node):
        message = "close takes only `true` (the server must close the connection)"
        reader.problem(node, message + "; remove the step if it should not")


def _starttls(draft: StepDraft, node: Node, reader: NodeReader) -> None:
    """``starttls: true``, or an expectation of its 220 (with a text pattern, say)."""
    draft.text = "STARTTLS"
    if isinstance(node, ScalarNode) and node.tag == BOOL_TAG:
        if not is_true(node):
            reader.problem(node, "starttls takes `true` or an expectation of its 220")
        draft.expect = STARTTLS_DEFAULT
        return
    draft.expect = parse_expectation(node, reader, "starttls")
    draft.greeting_expects = True
    _check_starttls_expects_220(draft, node, reader)


def _check_starttls_expects_220(draft: StepDraft, node: Node, reader: NodeReader) -> None:
    codes = None if draft.expect is None else draft.expect.codes
    if codes is not None and codes != frozenset({220}):
        reader.problem(
            node,
            "a starttls step upgrades on 220 only (RFC 3207 §4); to test that a server refuses"
            " STARTTLS, write `send: STARTTLS` with the refusal it should give (`expect: 454`)",
        )
        draft.expect = STARTTLS_DEFAULT


def _send(draft: StepDraft, node: Node, reader: NodeReader) -> str | None:
    if is_blank(node):
        reader.problem(node, 'send has no value; to send an empty line, write send: ""')
        return None
    text = reader.text(node, "send")
    if text is None:
        return None
    # RFC 5321 §2.3.8: CR and LF only ever appear together, ending a command line.
    if "\r" in text or "\n" in text:
        hint = " (a `|` block adds a final line break; use `|-`)" if text[-1:] == "\n" else ""
        reader.problem(
            node,
            "send is one command line, without line breaks; use a separate step per"
            f" command, and `data:` for the message{hint}",
        )
        return None
    if "\0" in text:
        # RFC 5321 §2.4 and RFC 6531 §3.3: a command is text, ASCII or UTF-8; NUL is neither,
        # and a server written in C reads the line as ending there.
        reader.problem_at(
            node,
            text.index("\0"),
            "send holds a NUL character (U+0000), which no SMTP command may carry",
        )
        return None
    if text.split(" ", 1)[0].upper() == "AUTH":
        # A raw AUTH line carries the credentials in the file (base64 is no protection), and
        # its 334 challenges need answers a send step cannot give.
        reader.problem(
            node,
            "send: AUTH is not allowed: use the auth step, which answers the server's"
            " challenges and keeps the secret out of the file, e.g. `- auth: {mechanism: PLAIN,"
            ' username: "{user}", password: {env: SMTP_PASSWORD}}`',
        )
        return None
    if text.split(" ", 1)[0].upper() == "BDAT":
        # The octets after a BDAT line are part of the command; a send step has none to give.
        reader.problem(
            node,
            "send: BDAT is not allowed: use the bdat step, which sends the chunks and their"
            " octets (RFC 3030), e.g. `- bdat: {message: TEXT, chunk_size: 1000}`",
        )
        return None
    return text if _add_template(node, text, draft, reader) else None


def _xclient(
    draft: StepDraft, node: Node, reader: NodeReader
) -> tuple[tuple[str, str], ...] | None:
    """``xclient: {name: client.example, addr: "192.0.2.{session}", ...}``: XCLIENT_README's
    attributes (any case), each a template; sent in upper case, in file order."""
    if not isinstance(node, MappingNode) or not node.value:
        reader.problem(
            node,
            'xclient takes a mapping of attributes, such as `xclient: {addr: "192.0.2.{session}",'
            f" name: client.example}}` (attributes: {', '.join(XCLIENT_ATTRIBUTES)})",
        )
        return None
    attributes: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    ok = True
    for written, (key_node, value_node) in reader.mapping(node, "in xclient", None).items():
        name = written.upper()
        if name not in XCLIENT_ATTRIBUTES:
            reader.problem(
                key_node,
                f"xclient: {shown(written)} is not an XCLIENT attribute; use one of"
                f" {', '.join(XCLIENT_ATTRIBUTES)} (any case)",
            )
            ok = False
            continue
        if name in seen:
            reader.problem(key_node, f"xclient: {name} is given twice (as {shown(seen[name])})")
            ok = False
            continue
        seen[name] = written
        if is_blank(value_node):
            reader.problem(
                value_node,
                f"xclient: {written} has no value; give one, or [UNAVAILABLE] (or"
                " [TEMPUNAVAIL]) for information the proxy does not have",
            )
            ok = False
            continue
        text = reader.text(value_node, f"xclient: {written}")
        if text is not None and ("\r" in text or "\n" in text):
            reader.problem(value_node, f"xclient: {written} must not hold a line break")
            text = None
        if text is None or not _add_template(value_node, text, draft, reader):
            ok = False
            continue
        attributes.append((name, text))
    return tuple(attributes) if ok else None


def _auth(draft: StepDraft, node: Node, reader: NodeReader) -> AuthSpec | None:
    if not isinstance(node, MappingNode):
        reader.problem(
            node,
            "auth takes a mapping: {mechanism: PLAIN, username: USER, password: PASSWORD}"
            f" (mechanisms: {', '.join(AUTH_MECHANISMS)})",
        )
        return None
    keys = reader.mapping(node, "in auth", _AUTH_KEYS)
    mechanism = None
    if "mechanism" not in keys:
        reader.problem(node, f"auth needs a `mechanism:`, one of {', '.join(AUTH_MECHANISMS)}")
    else:
        mechanism_node = keys["mechanism"][1]
        written = reader.text(mechanism_node, "auth: mechanism")
        if written is not None and written.upper() not in AUTH_MECHANISMS:
            reader.problem(
                mechanism_node,
                f"auth: mechanism {shown(written)} is not one smtpload speaks; use one of"
                f" {', '.join(AUTH_MECHANISMS)}",
            )
        elif written is not None:
            mechanism = written.upper()
    scram = mechanism == "SCRAM-SHA-256"
    username = None
    if "username" not in keys:
        reader.problem(node, "auth needs a `username:`")
    else:
        username = _credential(draft, keys["username"][1], reader, "auth: username", scram=scram)
    secret_key = "token" if mechanism == "XOAUTH2" else "password"
    wrong_key = "password" if secret_key == "token" else "token"
    if mechanism is not None and wrong_key in keys:
        why = (
            "XOAUTH2 sends an OAuth 2.0 access token: write `token:`"
            if mechanism == "XOAUTH2"
            else f"`token:` is for XOAUTH2 only; {mechanism} takes a `password:`"
        )
        reader.problem(keys[wrong_key][0], f"auth: {why}")
        return None
    secret = None
    if mechanism is not None and secret_key not in keys:
        reader.problem(node, f"auth with {mechanism} needs a `{secret_key}:`")
    elif mechanism is not None:
        secret = _credential(
            draft, keys[secret_key][1], reader, f"auth: {secret_key}", secret=True, scram=scram
        )
    if mechanism is None or username is None or secret is None:
        return None
    return AuthSpec(mechanism, username, secret)


def _credential(
    draft: StepDraft,
    node: Node,
    reader: NodeReader,
    what: str,
    *,
    secret: bool = False,
    scram: bool = False,
) -> Credential | None:
    """A template over the variables, or ``{env: NAME}``: the value of an environment
    variable, read now (so that a missing one is found before the run) and taken literally.

    With ``secret`` (a password, a token), no message quotes any of the value's text: not a
    tag, a key, a variable's name in it, nor an environment variable "name" that cannot be
    one (the secret itself, typed in the wrong place). Issue 11.

    With ``scram``, what SASLprep refuses (scenario/saslprep.py) is said here, at its place:
    the environment's value, a text without variables, a control character in a template's
    literal text; a value made from variables is the compiler's to check.
    """
    if isinstance(node, MappingNode):
        if secret and not all(
            isinstance(key, ScalarNode) and key.value == "env" for key, _ in node.value
        ):
            reader.problem(
                node,
                f"{what}: a mapping here must be {{env: NAME}} (its text is not shown); to"
                ' start a value with {, quote it: "{{..."',
            )
            return None
        keys = reader.mapping(node, f"in {what}", ("env",))
        if "env" not in keys:
            if not node.value:
                reader.problem(node, f"{what} takes text, or {{env: NAME}}")
            return None
        name_node = keys["env"][1]
        name = reader.text(name_node, f"{what}: env", secret=secret)
        if name is None:
            return None
        if secret and not is_variable_name(name):
            reader.problem(
                name_node,
                f"{what}: env: this is not an environment variable name (letters, digits and _,"
                " not starting with a digit; its text is not shown): did you put the secret"
                " itself here? Write its name, {env: SMTP_PASSWORD}, and export it",
            )
            return None
        value = reader.environ.get(name)
        if value is None:
            reader.problem(
                name_node,
                f"{what}: the environment variable {shown(name)} is not set; set it before"
                " the run (export " + clipped(name) + "=...)",
            )
            return None
        if scram and not _saslprep_accepts(value, name_node, reader, what, secret=secret):
            return None
        return Credential(value, literal=True)
    text = reader.text(node, what, secret=secret)
    if text is None:
        return None
    if "\r" in text or "\n" in text:
        reader.problem(node, f"{what} must not hold a line break")
        return None
    if secret:
        draft.secret_nodes = (*draft.secret_nodes, node)
    if not _add_template(node, text, draft, reader):
        return None
    if scram:
        template = parse_template(text)
        for at, part in enumerate(template.parts[::2]):
            # A variable's value may not be empty; a control character in the text around it
            # is refused whatever the values are.
            exact = at == 0 and text.startswith(part)  # then offsets in part are the text's
            if (part or template.is_constant) and not _saslprep_accepts(
                part, node, reader, what, secret=secret, at_offset=exact
            ):
                return None
    return Credential(text)


def _saslprep_accepts(
    value: str, node: Node, reader: NodeReader, what: str, *, secret: bool, at_offset: bool = False
) -> bool:
    """Whether SASLprep takes ``value``; else its refusal is reported at ``node`` (at the
    refused character with ``at_offset``: ``value`` starts the node's text)."""
    try:
        saslprep(value)
    except SaslprepError as error:
        why = f"{error.reason} (the text is not shown)" if secret else str(error)
        message = f"{what}: SCRAM-SHA-256 refuses it (SASLprep, RFC 4013/RFC 7613): {why}"
        if at_offset:
            reader.problem_at(node, error.offset, message)
        else:
            reader.problem(node, message)
        return False
    return True


def _data(draft: StepDraft, node: Node, reader: NodeReader) -> None:
    if isinstance(node, MappingNode):
        keys = reader.mapping(node, "in data", _DATA_KEYS + MESSAGE_KEYS)
        if not node.value:
            reader.problem(node, "data needs `message:`, `size:`, or both")
        if uses_message_syntax(keys):  # generated or real messages: message_syntax.py
            draft.message = read_message(
                node, keys, reader, lambda at, text: _add_template(at, text, draft, reader)
            )
            return
        if "message" in keys:
            draft.text = _message(draft, keys["message"][1], reader)
        if "size" in keys:
            draft.data_size = _size(keys["size"][1], reader, "data")
    else:
        draft.text = _message(draft, node, reader)


def _size(node: Node, reader: NodeReader, action: str) -> int | None:
    if isinstance(node, ScalarNode) and node.tag in TEXT_TAGS:
        return byte_count(node, reader, f"{action}: size")  # with a unit: 20KiB
    size = reader.number(node, f"{action}: size", whole=True)
    if size is not None and size < 0:
        reader.problem(node, f"{action}: size must be 0 or more bytes")
    elif size is not None and size > MAX_DATA_SIZE_BYTES:
        reader.problem(
            node,
            f"{action}: size {int(size)} is more than the largest message smtpload sends,"
            f" {MAX_DATA_SIZE_BYTES} bytes (1 GiB); check the number of zeros",
        )
    elif size is not None:
        return int(size)
    return None


def _bdat(draft: StepDraft, node: Node, reader: NodeReader) -> None:
    """``bdat:``: a message as ``data:`` takes it, and how it is cut (bdat_syntax.py)."""

    def read_source(node: MappingNode, keys: dict[str, tuple[ScalarNode, Node]]) -> None:
        draft.message = read_message(
            node, keys, reader, lambda at, text: _add_template(at, text, draft, reader)
        )

    text, size, chunking, chunks_node = read_bdat(
        node,
        reader,
        lambda message: _message(draft, message, reader, "bdat"),
        lambda size: _size(size, reader, "bdat"),
        read_source,
    )
    draft.text, draft.data_size = text, size
    draft.chunking = Chunking(
        chunking.chunk_size, chunking.chunks, chunking.last_empty, BDAT_CHUNK_DEFAULT
    )
    check_chunk_sizes(chunking, chunks_node, message_length(text, size), reader)


def _message(draft: StepDraft, node: Node, reader: NodeReader, action: str = "data") -> str | None:
    if isinstance(node, SequenceNode):
        reader.problem(
            node, f"{action} must be the message text, or {{message: TEXT, size: BYTES}}"
        )
        return None
    text = reader.text(node, action)
    if text is None or not _add_template(node, text, draft, reader):
        return None
    return text


def _add_template(node: Node, text: str, draft: StepDraft, reader: NodeReader) -> bool:
    template = read_template(node, reader, text)
    if template is not None and template.names:
        draft.templates = (*draft.templates, (node, template))
    return template is not None


def _expect(draft: StepDraft, key: Node, node: Node, reader: NodeReader) -> None:
    if draft.kind is StepKind.CLOSE:
        reader.problem(key, "a close step takes no `expect`: it waits for the connection to end")
    elif draft.greeting_expects:
        action = "starttls" if draft.kind is StepKind.STARTTLS else "greeting"
        reader.problem(
            key,
            f"give the expectation once: `{action}: 220`, or `{action}: true` with `expect:`",
        )
    elif draft.kind is not None:
        draft.expect = parse_expectation(node, reader, "expect")
        if draft.kind is StepKind.STARTTLS:
            _check_starttls_expects_220(draft, node, reader)


def _capture(draft: StepDraft, key: Node, node: Node, reader: NodeReader) -> None:
    if draft.kind is StepKind.CLOSE:
        reader.problem(key, "a close step takes no `capture`: there is no reply to search")
        return
    pattern = reader.text(node, "capture")
    if pattern is None:
        return
    try:
        groups = compile_capture(pattern).groups
    except PatternError as exc:
        reader.problem_at(node, exc.offset, f"capture: {exc.message}")
        return
    if not groups:
        reader.problem(
            node,
            "capture needs a named group, such as (?P<queue_id>\\w+); each group's name"
            " becomes a variable for later steps",
        )
        return
    for group in groups:
        if not is_variable_name(group):
            # RE2 takes names such as 1st or é, which no {template} could use.
            reader.problem(node, not_a_variable_name("capture group", group))
            return
        if group in BUILTIN_VARIABLES:
            reader.problem(
                node, f"capture group {shown(group)} would hide the built-in {{{group}}}"
            )
            return
    draft.capture, draft.capture_node, draft.groups = pattern, node, groups
