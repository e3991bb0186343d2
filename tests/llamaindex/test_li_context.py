"""Pure helpers over Memobase context text: emptiness, placeholders, truncation."""

from __future__ import annotations

from llama_index.core.prompts.utils import format_string
from support.li_models import EMPTY_PACK, pack

from memobase_integrations.context_text import (
    ContextPack,
    is_empty_context,
    neutralize_placeholders,
    truncate_context,
)
from memobase_integrations.tokens import count_tokens

# Recorded from a real Memobase server:
# ../shared/fixtures/memobase-server/02_insert_async_flush_sync_then_read.json
SERVER_PACK = (
    "---\n# Memory\nUnless the user has relevant queries, do not actively mention those memories "
    "in the conversation.\n## User Current Profile:\n- basic_info::name: Alice Chen\n"
    "- work::title: software engineer [mention 2026/11/24]\n\n## Past Events:\n"
    "- User's name is Alice Chen. // info\n---\n"
)
# fixtures/memobase-server/05_bad_inputs.json: a user with nothing processed yet
SERVER_EMPTY_PACK = (
    "---\n# Memory\nUnless the user has relevant queries, do not actively mention those memories "
    "in the conversation.\n## User Current Profile:\n- \n\n## Past Events:\n\n---\n"
)


def test_empty_packs_are_recognised() -> None:
    assert is_empty_context(SERVER_EMPTY_PACK)
    assert is_empty_context(EMPTY_PACK)
    assert is_empty_context("  \n")
    assert not is_empty_context(SERVER_PACK)
    assert not is_empty_context(pack([], ["went hiking"]))
    assert not is_empty_context("a custom template with text")


def test_parse_and_render_round_trip_the_server_layout() -> None:
    parsed = ContextPack.parse(SERVER_PACK)
    assert parsed is not None
    assert parsed.profile == [
        "- basic_info::name: Alice Chen",
        "- work::title: software engineer [mention 2026/11/24]",
    ]
    assert parsed.events == ["- User's name is Alice Chen. // info"]
    assert parsed.render() == SERVER_PACK


def test_placeholders_are_neutralised_for_safe_formatter() -> None:
    text = 'wrote {query_str} and {context_str} and {a.b}; json {"k": 1}; {{x}}; { spaced }'
    safe = neutralize_placeholders(text)
    assert safe == (
        'wrote { query_str } and { context_str } and { a.b }; json {"k": 1}; {{ x }}; { spaced }'
    )
    # What LlamaIndex's SafeFormatter does to chat history: nothing, any more.
    assert format_string(safe, query_str="Q?", context_str="CTX", x="X") == safe
    # ...whereas the raw text would have been rewritten.
    assert "Q?" in format_string(text, query_str="Q?")


def test_truncation_drops_events_first_oldest_first() -> None:
    text = pack(["basic_info::name: Gus", "work::title: plumber"], ["newest event", "oldest event"])
    cut = truncate_context(text, 1)
    assert cut is not None
    assert "oldest event" not in cut
    assert "newest event" in cut
    assert "basic_info::name: Gus" in cut and "work::title: plumber" in cut


def test_truncation_then_drops_profile_lines_from_the_bottom() -> None:
    text = pack(["basic_info::name: Gus", "work::title: plumber"], ["an event"])
    needed = count_tokens("- an event") + 1 + 1  # all events, then at least one token more
    cut = truncate_context(text, needed)
    assert cut is not None
    assert "an event" not in cut
    assert "work::title: plumber" not in cut
    assert "basic_info::name: Gus" in cut
    assert cut.startswith("---\n# Memory") and cut.rstrip().endswith("---")


def test_truncation_returns_none_when_nothing_is_left() -> None:
    text = pack(["basic_info::name: Gus"], ["an event"])
    assert truncate_context(text, 10_000) is None


def test_truncation_of_unknown_layout_drops_the_block() -> None:
    assert truncate_context("P: Gus | E: hiking", 1) is None
    assert truncate_context("P: Gus | E: hiking", 0) == "P: Gus | E: hiking"


def test_the_engines_chinese_template_is_understood_too() -> None:
    from memobase_integrations.engine.context import DEFAULT_TEMPLATES

    zh = DEFAULT_TEMPLATES["zh"]
    assert is_empty_context(zh.format(profile_section="- ", event_section=""))
    full = zh.format(profile_section="- basic_info::name: 小明", event_section="- 去了北京")
    assert not is_empty_context(full)
    cut = truncate_context(full, 1)
    assert cut is not None and "去了北京" not in cut and "小明" in cut
    assert "## 过去事件：" in cut
