"""What the demo's runner and its framework apps share: the chat-app protocol, the exchange
of one turn, the model setup and the offline fake models' answers.

Its own module so that ``run`` (which loads the framework apps lazily) and the apps (which
need these types) do not import each other.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from memobase_integrations.settings import LLMSettings

if TYPE_CHECKING:
    from memobase_integrations.testing import StandInLLM

__all__ = [
    "ChatRunner",
    "DemoSetup",
    "Exchange",
    "offline_reply",
    "remembered_facts",
]


@dataclass(slots=True)
class Exchange:
    """One model answer and the system message(s) of the model call that produced it."""

    reply: str
    system_prompts: list[str] = field(default_factory=list)


class ChatRunner(Protocol):
    """A framework chat app wired to Memobase (see ``langchain_app`` / ``llamaindex_app``)."""

    label: str

    def new_session(self) -> None: ...
    def ask(self, text: str) -> Exchange: ...
    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class DemoSetup:
    """Which models run where, decided once from the environment."""

    llm: LLMSettings
    online: bool
    chat_model: str | None
    stand_in: StandInLLM | None = None


# -- the offline fake models' answers ----------------------------------------------------------
_PROFILE_LINE = re.compile(r"^\s*-\s*(?P<topic>[^:\n]+)::(?P<sub>[^:\n]+):\s*(?P<memo>.+)$")
_MENTION = re.compile(r"\s*\[mention [^\]]*\]")


def remembered_facts(system_prompts: Sequence[str]) -> list[str]:
    """``sub_topic: memo`` for each profile line of a Memobase context in the prompts."""
    facts: list[str] = []
    for prompt in system_prompts:
        section = prompt.split("## User Current Profile:", 1)
        if len(section) < 2:
            continue
        profile_part = section[1].split("## Past Events:", 1)[0]
        for line in profile_part.splitlines():
            match = _PROFILE_LINE.match(line)
            if match:
                memo = _MENTION.sub("", match["memo"]).strip().replace(";", ", ")
                facts.append(f"{match['sub'].strip()}: {memo}")
    return facts


def offline_reply(system_prompts: Sequence[str], user_text: str) -> str:
    """What the fake chat models say: rule-based, but it visibly uses the injected memory."""
    facts = remembered_facts(system_prompts)
    if not facts:
        return "Nice to meet you! Tell me more whenever you like."
    if user_text.rstrip().endswith("?"):
        return "From what I remember about you (" + "; ".join(facts[:5]) + "), here is an idea."
    return "Noted! I already knew: " + "; ".join(facts[:3]) + "."
