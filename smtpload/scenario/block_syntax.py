"""The grammar of ``repeat:`` and ``pipeline:`` items in `steps:`, and their rules.

A scenario's steps stay one flat list (``Scenario.steps``, each step once, so that a repeated
step keeps one name and one histogram); a block is a range of it (``model.Block``). This
module reads the list of `steps:`, items and blocks alike, into the flat drafts of
``step_syntax.py`` plus the blocks over them, and checks what a block may hold: RFC 2920 §3.1's
rules for a pipeline group, and what cannot run twice in a session for a repeat. Steps are
numbered in file order across blocks ("step 7" counts the steps inside repeat and pipeline
items too), as every check across steps (``loader.py``'s) sees the flat list.

It reports through the caller's ``yaml_nodes.NodeReader``, compiles nothing, and knows
nothing of how blocks run (that is the engine's).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from smtpload.errors import counted
from smtpload.scenario.model import Block, BlockKind, StepKind
from smtpload.scenario.step_syntax import StepDraft, read_step
from smtpload.scenario.yaml_nodes import NodeReader, is_blank, kind_of
from smtpload.scenario.yaml_tree import MappingNode, Node, ScalarNode, SequenceNode

__all__ = [
    "MAX_BLOCK_DEPTH",
    "MAX_REPEAT_COUNT",
    "BlockDraft",
    "check_blocks",
    "read_steps",
    "to_blocks",
]

#: The most times a repeat runs its steps per entry (``repeat: N``, ``max: N``).
MAX_REPEAT_COUNT = 1_000_000

#: How deep blocks may nest (a pipeline inside repeats counts as a level).
MAX_BLOCK_DEPTH = 8

# The keys that make an item of `steps:` a block rather than a step (`steps` alone: a repeat
# whose `repeat:` is missing or misspelt, so that the mapping's hint names the right key).
_BLOCK_KEYS = ("repeat", "pipeline", "steps")
_REPEAT_KEYS = ("repeat", "steps")
_RANGE_KEYS = ("min", "max")

# RFC 2920 §3.1: "The EHLO, DATA, VRFY, EXPN, TURN, QUIT, and NOOP commands can only appear
# as the last command in a group since their success or failure produces a change of state
# which the client SMTP must accommodate." HELO and LHLO (RFC 2033 §4.1) change the state as
# EHLO does; STARTTLS: RFC 3207 §4, "the STARTTLS command must be the last command in a group".
_LAST_ONLY_VERBS = ("EHLO", "HELO", "LHLO", "DATA", "VRFY", "EXPN", "TURN", "QUIT", "NOOP")
_STARTTLS = "STARTTLS"

# The steps no pipeline group may hold, and why.
_NOT_PIPELINED = {
    StepKind.GREETING: "a greeting is the server's, sent before any command",
    StepKind.CLOSE: "a close step waits for the server to end the connection",
    StepKind.AUTH: "an auth step is an exchange of rounds, each waiting for the server's"
    " challenge (RFC 4954 §4)",
    StepKind.XCLIENT: "the server answers XCLIENT by starting the session over with a new"
    " greeting (XCLIENT_README)",
    StepKind.BDAT: "bdat steps run in lock-step for now: put the bdat step after the group",
    StepKind.TLS: "the TLS handshake is no command",
}

# The steps no repeat may hold, and why.
_NOT_REPEATED = {
    StepKind.GREETING: "the server greets once, when the connection opens",
    StepKind.CLOSE: "nothing can follow a close, and a repeat runs its steps again",
    StepKind.STARTTLS: "a session upgrades to TLS once (RFC 3207 §4.2: no STARTTLS inside TLS)",
    StepKind.TLS: "a session upgrades to TLS once (RFC 3207 §4.2)",
    StepKind.AUTH: "a session authenticates once (RFC 4954 §4: no AUTH after a successful AUTH)",
}


@dataclass(slots=True)
class BlockDraft:
    """A block as read: a range of the drafts (``start``, ``end``: indices in the list of
    drafts, end exclusive), and for a repeat its count."""

    kind: BlockKind
    node: MappingNode
    start: int
    end: int
    depth: int
    count_min: int = 1
    count_max: int = 1


def read_steps(node: SequenceNode, reader: NodeReader) -> tuple[list[StepDraft], list[BlockDraft]]:
    """The flat drafts of the items of `steps:` and the blocks over them.

    Blocks are ordered by ``start``, an outer block before the blocks it holds. A block whose
    items are all invalid holds no draft and is left out (its problems are reported).
    """
    steps = _StepsReader(reader)
    steps.items(node, depth=0, pipelined=False)
    steps.blocks.sort(key=lambda block: (block.start, -block.end, block.depth))
    return steps.drafts, steps.blocks


def to_blocks(drafts: Sequence[StepDraft], blocks: Sequence[BlockDraft]) -> tuple[Block, ...]:
    """The model's blocks, for a file without problems (where every draft became a step)."""
    return tuple(
        Block(
            kind=block.kind,
            start=block.start,
            end=block.end,
            count_min=block.count_min,
            count_max=block.count_max,
            line=block.node.start_mark.line + 1,
            column=block.node.start_mark.column + 1,
        )
        for block in blocks
    )


class _StepsReader:
    def __init__(self, reader: NodeReader) -> None:
        self.reader = reader
        self.drafts: list[StepDraft] = []
        self.blocks: list[BlockDraft] = []
        self.number = 0  # steps read so far, across blocks: the next step's number - 1

    def items(self, node: SequenceNode, *, depth: int, pipelined: bool) -> None:
        for item in node.value:
            if _is_block(item):
                assert isinstance(item, MappingNode)
                self._block(item, depth=depth, pipelined=pipelined)
                continue
            self.number += 1
            draft = read_step(item, self.number, self.reader)
            if draft is not None:
                self.drafts.append(draft)

    def _block(self, node: MappingNode, *, depth: int, pipelined: bool) -> None:
        reader = self.reader
        written = {key.value for key, _ in node.value if isinstance(key, ScalarNode)}
        kind = BlockKind.PIPELINE if "pipeline" in written else BlockKind.REPEAT
        if pipelined:
            reader.problem(
                node,
                f"a pipeline group holds steps only, not a {kind.value}: its commands go to the"
                " server in one write (RFC 2920 §3.1); end the group before this item",
            )
            return
        if depth >= MAX_BLOCK_DEPTH:
            reader.problem(
                node,
                f"repeat and pipeline items nest at most {MAX_BLOCK_DEPTH} deep; this one is"
                f" level {depth + 1}",
            )
            return
        block = BlockDraft(kind, node, start=len(self.drafts), end=0, depth=depth)
        if kind is BlockKind.PIPELINE:
            keys = reader.mapping(node, "in a pipeline item", ("pipeline",))
            steps = keys["pipeline"][1] if "pipeline" in keys else None
            what = "pipeline"
        else:
            keys = reader.mapping(node, "in a repeat item", _REPEAT_KEYS)
            if "repeat" in keys:
                self._count(block, keys["repeat"][1])
            elif "steps" in keys and len(keys) == len(node.value):  # else a hint was given
                reader.problem(
                    node,
                    "these `steps:` need a `repeat:` saying how many times they run:"
                    " `repeat: 5`, or a range drawn per session, `repeat: {min: 1, max: 20}`",
                )
            steps = keys["steps"][1] if "steps" in keys else None
            what = "steps"
            if steps is None and "repeat" in keys:
                reader.problem(
                    node, "a repeat needs `steps:`, the list of steps it runs, beside `repeat:`"
                )
        if steps is None:
            return
        if is_blank(steps) or (isinstance(steps, SequenceNode) and not steps.value):
            reader.problem(
                steps,
                f"this {kind.value} is empty; give it at least one step"
                if what == kind.value
                else f"this {kind.value}'s {what} list is empty; give it at least one step",
            )
            return
        if not isinstance(steps, SequenceNode):
            reader.problem(
                steps,
                f"{what} must be a list of steps (lines starting with `- `), not a"
                f" {kind_of(steps)}",
            )
            return
        self.items(steps, depth=depth + 1, pipelined=kind is BlockKind.PIPELINE)
        block.end = len(self.drafts)
        if block.end > block.start:
            self.blocks.append(block)

    def _count(self, block: BlockDraft, node: Node) -> None:
        reader = self.reader
        if isinstance(node, MappingNode):
            keys = reader.mapping(node, "in repeat", _RANGE_KEYS)
            low = self._one_count(keys["min"][1], "repeat: min") if "min" in keys else None
            high = self._one_count(keys["max"][1], "repeat: max") if "max" in keys else None
            all_known = len(keys) == len(node.value)  # else reported, with a hint
            if all_known and (not node.value or ("min" in keys) != ("max" in keys)):
                missing = "max" if "min" in keys else "min"
                reader.problem(
                    node,
                    f"a repeat's range needs both `min:` and `max:` (`{missing}:` is missing),"
                    " such as `repeat: {min: 1, max: 20}`; for a fixed count write `repeat: 5`",
                )
            elif low is not None and high is not None and low > high:
                reader.problem(
                    keys["min"][1],
                    f"repeat: min {low:,} is more than max {high:,}; give min <= max",
                )
            elif low is not None and high is not None:
                block.count_min, block.count_max = low, high
            return
        if isinstance(node, SequenceNode):
            reader.problem(
                node,
                "repeat takes a whole number of times (`repeat: 5`) or a range drawn per"
                " session (`repeat: {min: 1, max: 20}`), not a list",
            )
            return
        count = self._one_count(node, "repeat")
        if count is not None:
            block.count_min = block.count_max = count

    def _one_count(self, node: Node, what: str) -> int | None:
        number = self.reader.number(node, what, whole=True)
        if number is None:
            return None
        if number < 0:
            self.reader.problem(node, f"{what} must be 0 or more (0 runs the steps never)")
            return None
        if number > MAX_REPEAT_COUNT:
            self.reader.problem(
                node,
                f"{what} {int(number):,} is more than {MAX_REPEAT_COUNT:,}, the most a repeat"
                " runs; check the number of zeros",
            )
            return None
        return int(number)


def _is_block(node: Node) -> bool:
    return isinstance(node, MappingNode) and any(
        isinstance(key, ScalarNode) and key.value in _BLOCK_KEYS for key, _ in node.value
    )


# -- the rules ------------------------------------------------------------------------------


def check_blocks(
    drafts: Sequence[StepDraft], blocks: Sequence[BlockDraft], reader: NodeReader
) -> None:
    """What a pipeline group and a repeat may hold; a data step at a repeat's edge."""
    repeated: set[int] = set()  # the steps in a repeat, each checked once however deep
    for block in blocks:
        group = drafts[block.start : block.end]
        if block.kind is BlockKind.PIPELINE:
            _check_pipeline(group, reader)
        else:
            repeated.update(range(block.start, block.end))
    _check_repeated([drafts[at] for at in sorted(repeated)], reader)
    _check_data_across_repeats(drafts, blocks, reader)
    _check_message_after_354(drafts, blocks, reader)


def _check_message_after_354(
    drafts: Sequence[StepDraft], blocks: Sequence[BlockDraft], reader: NodeReader
) -> None:
    """RFC 5321 §4.1.1.4: after DATA's 354 the server reads message text until the lone ".",
    so a `send: DATA` that expects its 354 must be followed by the message (a `data` step),
    from each step that may run next: the one after it in the file, and at a repeat's end
    the repeat's first step (on its next run). A command there would be read as the
    message's text, and the session would wait for a reply that never comes. A DATA that is
    the scenario's last step ends the session in the message (closing aborts it, §3.3)."""
    also_after: dict[int, list[int]] = {}  # step index -> the other steps that may follow it
    for block in blocks:
        if block.kind is BlockKind.REPEAT and block.count_max > 1:
            also_after.setdefault(block.end - 1, []).append(block.start)
    for at, draft in enumerate(drafts):
        if draft.kind is not StepKind.SEND or _verb(draft) != "DATA":
            continue
        codes = draft.expect.codes if draft.expect is not None else None
        if codes is None or 354 not in codes:
            continue  # a DATA that expects its refusal (503, 554), or says nothing
        for after in (at + 1, *also_after.get(at, ())):
            # (A bdat step there is refused by the loader's own check, with its reason.)
            if after >= len(drafts) or drafts[after].kind in (StepKind.DATA, StepKind.BDAT, None):
                continue
            following = drafts[after]
            assert following.kind is not None
            reader.problem(
                following.node,
                f"step {following.number} follows `send: DATA` (step {draft.number}), which"
                " expects 354, after which the server reads message text (RFC 5321 §4.1.1.4):"
                f" a {following.kind.value} step there would be read as the message; put a"
                " `data` step after the DATA (or give the DATA `expect:` of its refusal)",
            )
            break


def _check_pipeline(group: Sequence[StepDraft], reader: NodeReader) -> None:
    last = len(group) - 1
    for at, draft in enumerate(group):
        if draft.kind is None:
            continue
        why = _NOT_PIPELINED.get(draft.kind)
        if why is not None:
            reader.problem(
                draft.node, f"a {draft.kind.value} step cannot be in a pipeline group: {why}"
            )
            continue
        if draft.kind is StepKind.DATA and at > 0:
            reader.problem(
                draft.node,
                "a data step (the message) may only be the first step of a pipeline group"
                ' (RFC 2920 §3.1: "the actual transfer of message content is explicitly'
                ' allowed to be the first command in a group"); it follows the 354 to a DATA'
                " that ended the group before: end this group before the data step",
            )
            continue
        verb = _STARTTLS if draft.kind is StepKind.STARTTLS else _verb(draft)
        if at < last and verb in _LAST_ONLY_VERBS:
            reader.problem(
                draft.node,
                f"{verb} may only be the last command of a pipeline group (RFC 2920 §3.1: EHLO,"
                " DATA, VRFY, EXPN, TURN, QUIT and NOOP change the session's state, so the"
                " client must see their reply before it sends more; HELO and LHLO do as EHLO);"
                f" end the group here, and put {counted(last - at, 'step')} after it in a"
                " new group",
            )
        elif at < last and verb == _STARTTLS:
            reader.problem(
                draft.node,
                "STARTTLS may only be the last command of a pipeline group (RFC 3207 §4: the"
                " commands after it go inside TLS); end the group here",
            )
        elif at < last and draft.capture_node is not None:
            reader.problem(
                draft.capture_node,
                "in a pipeline group only the last step may capture: the later steps of the"
                " group are sent before this step's reply arrives, so they could not use what it"
                " captures; move the capture to a step that ends a group",
            )


def _check_repeated(group: Sequence[StepDraft], reader: NodeReader) -> None:
    for draft in group:
        if draft.kind is None:
            continue
        why = _NOT_REPEATED.get(draft.kind)
        if why is None and draft.kind is StepKind.SEND and _verb(draft) == "QUIT":
            why = "the server closes the connection after QUIT (RFC 5321 §4.1.1.10)"
        if why is not None:
            what = "send: QUIT" if draft.kind is StepKind.SEND else f"{draft.kind.value} step"
            article = "an" if what[0] in "aeiou" else "a"
            reader.problem(
                draft.node,
                f"{article} {what} cannot be in a repeat: {why}; move it out of the repeat",
            )


def _check_data_across_repeats(
    drafts: Sequence[StepDraft], blocks: Sequence[BlockDraft], reader: NodeReader
) -> None:
    """RFC 5321 §4.1.1.4: the message only after DATA's 354, from each step that may run
    right before it, not only the one before it in the file: a repeat's last step runs before
    its first on every run after the first, and the step before a repeat that may run 0 times
    runs before the step after it. (The step before in the file is ``loader.py``'s check.)"""
    also_before: dict[int, list[tuple[int, str]]] = {}  # step index -> (index, how)
    for block in blocks:
        if block.kind is not BlockKind.REPEAT:
            continue
        if block.count_max > 1:
            also_before.setdefault(block.start, []).append(
                (block.end - 1, "on a repeat's second run")
            )
        if block.count_min == 0 and block.start > 0 and block.end < len(drafts):
            also_before.setdefault(block.end, []).append(
                (block.start - 1, "when the repeat before it runs 0 times")
            )
    for at, extra in sorted(also_before.items()):
        draft = drafts[at]
        if draft.kind is not StepKind.DATA:
            continue
        for before, how in extra:
            other = drafts[before]
            if other.kind is None:
                continue  # reported already
            codes = other.expect.codes if other.expect is not None else None
            if other.kind is StepKind.SEND and codes is not None and 354 in codes:
                continue
            reader.problem(
                draft.node,
                f"a data step must follow `send: DATA` with `expect: 354`, and {how} this step"
                f" follows step {other.number}, which is not one: move the data step, or end"
                " the repeat after a `send: DATA`",
            )
            break


def _verb(draft: StepDraft) -> str:
    """A send step's command verb, upper case (``RCPT TO:<a>`` -> ``RCPT``); an rcpt step's
    is RCPT."""
    if draft.kind is StepKind.RCPT:
        return "RCPT"
    if draft.kind is not StepKind.SEND:
        return ""
    words = (draft.text or "").split()
    return words[0].partition(":")[0].upper() if words else ""
