"""Memobase's chat-processing pipeline, in-process: blobs + current profile -> a :class:`FlushPlan`.

The pipeline only *computes*: it calls the LLM (through :class:`~.llm.LLMClient`) and returns
everything the flush will write. The store then writes the plan in one transaction together
with retiring the buffer rows, so a failure anywhere here writes nothing at all.

Steps (spec §3.3): entry summary (skipped for summary blobs) -> profile extraction -> one
merge call (APPEND / UPDATE / ABORT) -> organize topics with too many sub-topics ->
re-summarize over-long memos; event tagging when tags are configured; the event (``event_tip``,
``profile_delta``, ``event_tags``), its gists (the memo's ``-`` lines) and, when enabled,
embeddings (one batched call for the event text and all gists).

Where we are stricter than Memobase, on purpose - an answer we cannot use must never cost the
user data (the buffer is kept and retried instead). Every step's answer passes a check of
:mod:`.validation` (what the step may do) before the plan is built, and a failed check fails
the whole flush before anything is written:

* "nothing to keep" (entry summary) and "no tag applies" (tagging) are explicit answers
  (``NONE``); an empty answer is a failure, never "nothing";
* an entry summary that is prose with no list line at all is refused rather than stored as
  the event; a cut-off last line is refused;
* an extraction with a fact line we cannot read, or a cut-off last fact, is refused;
* a merge answer must decide every item (Memobase silently skips the missing ones), and an
  UPDATE must be a plausible memo for its slot;
* organize must account for every row it was given (it replaces them all), and a re-summary
  must be shorter than, and about, the memo it replaces (Memobase only logs their failures);
* tagging must name configured tags; an embedding failure fails the flush (Memobase stores
  NULL and the gist is never found).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import LLMError
from ..messages import render_blob
from ..models import BlobType, EventData, EventTag, ProfileDelta
from ..tokens import count_tokens, truncate_tokens
from .config import ResolvedConfig
from .llm import LLMClient
from .parsing import (
    Fact,
    parse_entry_summary,
    parse_event_tags,
    parse_extract,
    parse_merge,
    parse_organize,
    parse_resummary,
)
from .plan import ClaimedBlob, FlushPlan, NewProfile, ProfileUpdate, StoredProfile
from .prompts import (
    MergeItem,
    Step,
    already_logged,
    entry_summary_prompt,
    event_tagging_prompt,
    extract_prompt,
    merge_prompt,
    organize_prompt,
    resummary_prompt,
)
from .search import event_text as event_embedding_text  # embedded as it is searched
from .validation import (
    entry_summary_problem,
    event_tags_problem,
    extract_problem,
    merge_problem,
    organize_problem,
    summary_problem,
)

__all__ = ["Pipeline", "UnusableAnswerError", "event_embedding_text", "gists_of"]

logger = logging.getLogger(__name__)


class UnusableAnswerError(LLMError):
    """The LLM answered, but not in a form the step can use; nothing is written."""

    def __init__(self, step: str, why: str) -> None:
        super().__init__(
            f"The LLM's answer to the '{step}' step could not be used ({why}). Nothing was "
            "written; the turns stay buffered and will be retried. If this repeats, the "
            "model may be too weak for the line format: try a stronger model."
        )
        self.step = step


def _check(step: Step, problem: str | None) -> None:
    """Refuse the answer of ``step`` when its check found a ``problem``."""
    if problem is not None:
        raise UnusableAnswerError(step, problem)


def cap_tokens(text: str, max_tokens: int) -> str:
    """``text`` within ``max_tokens`` (Memobase caps re-summaries), cut between words and
    marked with "..." - never in the middle of a word."""
    cut = truncate_tokens(text, max_tokens)
    if cut == text:
        return text
    if text.startswith(cut) and cut[-1:].isalnum() and text[len(cut)].isalnum():
        head, space, _ = cut.rpartition(" ")
        if space and head.strip():
            cut = head
    return cut.rstrip(" ;,.") + "..."


def gists_of(memo: str) -> list[str]:
    """Each line of the memo that starts with ``-`` (after strip) is a gist, verbatim."""
    return [line.strip() for line in memo.splitlines() if line.strip().startswith("-")]


@dataclass(slots=True)
class _Work:
    """The profile changes being assembled (before organize and re-summary)."""

    add: list[NewProfile]
    update: dict[uuid.UUID, ProfileUpdate]
    delete: list[uuid.UUID]
    delta: list[tuple[str, str, str]]  # (topic, sub_topic, raw new info) of updated slots


class Pipeline:
    """Runs the LLM steps for one claimed batch. Stateless apart from the LLM client."""

    def __init__(self, llm: LLMClient) -> None:
        self.llm = llm

    # -- entry point ------------------------------------------------------------------------
    def run(
        self,
        blobs: Sequence[ClaimedBlob],
        blob_type: BlobType,
        profiles: Sequence[StoredProfile],
        cfg: ResolvedConfig,
    ) -> FlushPlan:
        """Compute what processing ``blobs`` writes. Raises :class:`LLMError` (or
        :class:`UnusableAnswerError`) and then nothing must be written."""
        already = already_logged([(p.topic, p.sub_topic, p.content) for p in profiles], cfg)
        text = "\n".join(render_blob(b.blob, b.created_at) for b in blobs)
        if blob_type == BlobType.chat:
            memo = self._entry_summary(text, already, cfg)
            if not memo:
                return FlushPlan()
        else:
            memo = text  # summary blobs skip the entry summary (spec §3.3)

        facts = self._extract(memo, already, cfg)
        work = self._merge(facts, profiles, cfg)
        self._organize(work, profiles, cfg)
        self._resummarize(work, cfg)
        tags = self._tags(memo, cfg) if cfg.event_tags else None

        delta = [
            ProfileDelta(content=a.content, attributes={"topic": a.topic, "sub_topic": a.sub_topic})
            for a in work.add
        ] + [
            ProfileDelta(content=raw, attributes={"topic": topic, "sub_topic": sub})
            for topic, sub, raw in work.delta
        ]
        event = EventData(event_tip=memo, event_tags=tags, profile_delta=delta)
        gists = gists_of(memo)
        plan = FlushPlan(
            event=event,
            gists=[(g, None) for g in gists],
            add=work.add,
            update=list(work.update.values()),
            delete=work.delete,
        )
        if self.llm.embeddings_enabled:
            vectors = self.llm.embed([event_embedding_text(event), *gists])
            plan.event_embedding = vectors[0]
            plan.gists = list(zip(gists, vectors[1:], strict=True))
        return plan

    # -- steps ------------------------------------------------------------------------------
    def _entry_summary(self, chat_text: str, already: str, cfg: ResolvedConfig) -> str:
        system, user = entry_summary_prompt(chat_text, already, cfg)
        raw = self.llm.complete(Step.entry_summary, system, user)
        memo = parse_entry_summary(raw)
        _check(Step.entry_summary, entry_summary_problem(raw, memo, chat_text))
        return memo  # "" only for an explicit "nothing to keep"

    def _extract(self, memo: str, already: str, cfg: ResolvedConfig) -> list[Fact]:
        system, user = extract_prompt(memo, already, cfg)
        raw = self.llm.complete(Step.extract_profile, system, user)
        facts = parse_extract(raw, cfg)
        _check(Step.extract_profile, extract_problem(raw, facts, f"{memo}\n{already}", cfg))
        return facts

    def _merge(
        self, facts: Sequence[Fact], profiles: Sequence[StoredProfile], cfg: ResolvedConfig
    ) -> _Work:
        # Profiles come newest first: if an app added a duplicate slot by hand, the newest wins.
        by_slot: dict[tuple[str, str], StoredProfile] = {}
        for p in profiles:
            by_slot.setdefault((p.topic, p.sub_topic), p)
        work = _Work(add=[], update={}, delete=[], delta=[])
        items: list[tuple[MergeItem, Fact, StoredProfile | None]] = []
        for fact in facts:
            existing = by_slot.get((fact.topic, fact.sub_topic))
            slot = cfg.slot(fact.topic, fact.sub_topic)
            if existing is None and not cfg.validate_mode and not (slot and slot.validate_value):
                work.add.append(NewProfile(fact.topic, fact.sub_topic, fact.memo))
                continue
            item = MergeItem.for_slot(
                len(items) + 1,
                fact.topic,
                fact.sub_topic,
                fact.memo,
                existing.content if existing else "",
                cfg,
            )
            items.append((item, fact, existing))
        if not items:
            return work
        system, user = merge_prompt([i for i, _, _ in items], cfg)
        raw = self.llm.complete(Step.merge_profile, system, user)
        decisions = parse_merge(raw, len(items))
        checked = [(i.memo_id, i.current_memo, i.new_info) for i, _, _ in items]
        _check(Step.merge_profile, merge_problem(decisions, checked))
        for item, fact, existing in items:
            decision = decisions[item.memo_id]
            if decision.action == "ABORT":
                continue
            if decision.action == "UPDATE":
                content = decision.memo or fact.memo
            else:  # APPEND
                content = f"{existing.content};{fact.memo}" if existing else fact.memo
            if existing is None:
                # UPDATE of an empty slot adds the LLM's memo; APPEND adds the raw fact.
                work.add.append(NewProfile(fact.topic, fact.sub_topic, content))
            else:
                work.update[existing.id] = ProfileUpdate(
                    existing.id, content, existing.update_hits + 1
                )
                work.delta.append((fact.topic, fact.sub_topic, fact.memo))
        return work

    def _organize(
        self, work: _Work, profiles: Sequence[StoredProfile], cfg: ResolvedConfig
    ) -> None:
        """Regroup each topic that already had more than ``max_profile_subtopics`` rows.

        Unlike Memobase (which organizes the pre-flush rows and then also applies this
        flush's changes to rows it deletes), the LLM sees the topic *after* this flush's
        merge, and the organized rows replace all of them.
        """
        by_topic: dict[str, list[StoredProfile]] = {}
        for p in profiles:
            by_topic.setdefault(p.topic, []).append(p)
        for topic, rows in by_topic.items():
            if len(rows) <= cfg.max_profile_subtopics:
                continue
            view = [
                (p.sub_topic, work.update[p.id].content if p.id in work.update else p.content)
                for p in rows
            ] + [(a.sub_topic, a.content) for a in work.add if a.topic == topic]
            system, user = organize_prompt(topic, view, cfg)
            raw = self.llm.complete(Step.organize_profile, system, user)
            # Read every row (no cap): a row cut off here would be a fact deleted.
            pairs = parse_organize(raw, len(view))
            _check(
                Step.organize_profile,
                organize_problem(raw, view, pairs, cfg.max_profile_subtopics),
            )
            ids = {p.id for p in rows}
            work.delete.extend(p.id for p in rows)
            for pid in ids:
                work.update.pop(pid, None)
            work.add = [a for a in work.add if a.topic != topic] + [
                NewProfile(topic, sub, memo) for sub, memo in pairs
            ]

    def _resummarize(self, work: _Work, cfg: ResolvedConfig) -> None:
        limit = cfg.max_pre_profile_token_size
        for i, add in enumerate(work.add):
            if count_tokens(add.content) > limit:
                work.add[i] = NewProfile(add.topic, add.sub_topic, self._shorten(add.content, cfg))
        for pid, upd in list(work.update.items()):
            if count_tokens(upd.content) > limit:
                work.update[pid] = ProfileUpdate(
                    upd.id, self._shorten(upd.content, cfg), upd.update_hits
                )

    def _shorten(self, content: str, cfg: ResolvedConfig) -> str:
        system, user = resummary_prompt(content, cfg)
        raw = self.llm.complete(Step.summary_profile, system, user)
        short = parse_resummary(raw)
        _check(Step.summary_profile, summary_problem(content, short))
        return cap_tokens(short, cfg.resummary_max_tokens)

    def _tags(self, memo: str, cfg: ResolvedConfig) -> list[EventTag]:
        system, user = event_tagging_prompt(memo, cfg)
        raw = self.llm.complete(Step.event_tagging, system, user)
        tags = parse_event_tags(raw, cfg)
        _check(Step.event_tagging, event_tags_problem(raw, [t.tag for t in tags], memo))
        return tags
