"""Deterministic synthetic conversations: a few long, multi-session chats with one user each.

Every system in the benchmark sees exactly the same turns, so cost and latency compare like
for like. The user messages mix small talk with the self-statements the stand-in LLM
recognises (name, age, city, job, employer, likes, family, pets, languages, dated plans),
and some facts change between sessions (a move, a new job) so merge/update paths run too.
Generation uses a seeded ``random.Random`` only: same arguments, same conversations.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta

from memobase_integrations.tokens import count_tokens

__all__ = ["Conversation", "Session", "Turn", "generate", "raw_tokens"]

_NAMES = ["Alice", "Bruno", "Chiara", "Dmitri", "Emeka", "Farah", "Goran", "Hana", "Ines", "Jonas"]
_RELATIVES = ["daughter", "son", "wife", "husband", "partner"]
_KIN_NAMES = ["Lena", "Marco", "Nora", "Omar", "Pia", "Quentin", "Rosa", "Sven", "Tara", "Umar"]
_CITIES = ["Berlin", "Lisbon", "Toronto", "Osaka", "Nairobi", "Lyon", "Austin", "Krakow", "Seoul"]
_JOBS = ["nurse", "software engineer", "teacher", "architect", "chef", "pilot", "accountant"]
_EMPLOYERS = ["Siemens", "Acme Corp", "the city hospital", "Globex", "Initech", "a small bakery"]
_LIKES = [
    "hiking",
    "jazz",
    "green tea",
    "chess",
    "sci-fi novels",
    "cycling",
    "sushi",
    "board games",
    "gardening",
    "photography",
    "yoga",
    "old movies",
    "baking bread",
    "bouldering",
]
_PETS = ["dog", "cat", "parrot", "rabbit", "turtle"]
_PET_NAMES = ["Biscuit", "Luna", "Pepper", "Mochi", "Rex", "Ziggy"]
_LANGUAGES = ["English", "Spanish", "German", "French", "Japanese", "Portuguese", "Polish"]
_PLANS = [
    "fly to Rome",
    "run a half marathon",
    "start a pottery class",
    "visit my parents",
    "move into a new flat",
    "take my driving test",
    "go camping by the lake",
]
_SMALL_TALK = [
    "Can you recommend a good book for a long train ride?",
    "What is a quick recipe for dinner tonight?",
    "How do I keep my houseplants alive in winter?",
    "Any tips for sleeping better?",
    "Explain the difference between a virus and a bacterium in simple words.",
    "What should I pack for a weekend trip?",
    "How can I stay focused when working from home?",
    "Give me a short stretching routine for the morning.",
    "What's a good way to learn vocabulary every day?",
    "Can you summarise what we talked about?",
    "Thanks, that helps a lot.",
    "Tell me a fun fact about octopuses.",
]
_ANSWERS = [
    "Sure! Here is a short suggestion you could try, and tell me how it goes.",
    "Good question. In short: keep it simple, do a little every day, and adjust as you go.",
    "Got it, I will keep that in mind. Is there anything else you would like to talk about?",
    "Here are three ideas: start small, make it a routine, and track your progress weekly.",
    "That sounds great! Many people find that planning ahead makes it much less stressful.",
    "Noted. Let me know if you want more detail on any of these points.",
]


@dataclass(frozen=True, slots=True)
class Turn:
    """One user message and the assistant's reply."""

    user: str
    assistant: str

    def messages(self) -> list[dict[str, str]]:
        return [
            {"role": "user", "content": self.user},
            {"role": "assistant", "content": self.assistant},
        ]


@dataclass(frozen=True, slots=True)
class Session:
    """One sitting: a fresh chat thread, same user. ``day`` is when it happens."""

    day: date
    turns: tuple[Turn, ...]


@dataclass(frozen=True, slots=True)
class Conversation:
    """All the sessions of one user."""

    user_id: str
    sessions: tuple[Session, ...] = field(default_factory=tuple)

    def turns(self) -> Iterator[Turn]:
        for session in self.sessions:
            yield from session.turns

    @property
    def n_messages(self) -> int:
        return 2 * sum(len(s.turns) for s in self.sessions)


def _a(noun: str) -> str:
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"


class _Persona:
    """Facts about one synthetic user; some change over time to exercise updates."""

    def __init__(self, rng: random.Random, index: int) -> None:
        self.rng = rng
        self.name = _NAMES[index % len(_NAMES)]
        self.age = rng.randint(21, 68)
        self.city = rng.choice(_CITIES)
        self.job = rng.choice(_JOBS)
        self.employer = rng.choice(_EMPLOYERS)
        self.likes = rng.sample(_LIKES, 6)
        self.relative = (rng.choice(_RELATIVES), rng.choice(_KIN_NAMES))
        self.pet = (rng.choice(_PETS), rng.choice(_PET_NAMES))
        self.languages = rng.sample(_LANGUAGES, 2)

    def statement(self, day: date) -> str:
        """A self-statement, sometimes about a fact that has just changed."""
        rng = self.rng
        kind = rng.choice(
            ["name", "age", "city", "job", "employer", "like", "family", "pet", "lang", "plan"]
        )
        if kind == "name":
            return f"My name is {self.name}."
        if kind == "age":
            return f"I am {self.age} years old."
        if kind == "city":
            if rng.random() < 0.3:
                self.city = rng.choice([c for c in _CITIES if c != self.city])
                return f"I moved to {self.city} last week."
            return f"I live in {self.city}."
        if kind == "job":
            if rng.random() < 0.2:
                self.job = rng.choice([j for j in _JOBS if j != self.job])
                self.employer = rng.choice([e for e in _EMPLOYERS if e != self.employer])
                return f"I got a new job as {_a(self.job)} at {self.employer}."
            return f"I work as {_a(self.job)}."
        if kind == "employer":
            return f"I work at {self.employer}."
        if kind == "like":
            return f"I like {rng.choice(self.likes)}."
        if kind == "family":
            relation, name = self.relative
            return f"My {relation} is named {name}."
        if kind == "pet":
            animal, name = self.pet
            return f"I have a {animal} named {name}."
        if kind == "lang":
            return f"I speak {self.languages[0]} and {self.languages[1]}."
        when = day + timedelta(days=rng.randint(3, 60))
        return f"I plan to {rng.choice(_PLANS)} on {when:%B} {when.day}."


def generate(
    n_conversations: int = 4,
    sessions_per_conversation: int = 6,
    turns_per_session: int = 25,
    *,
    seed: int = 8,
    statement_ratio: float = 0.5,
) -> list[Conversation]:
    """Build the conversation set. Defaults give 4 x 6 x 25 turns = 1,200 messages."""
    rng = random.Random(seed)
    conversations: list[Conversation] = []
    for c in range(n_conversations):
        persona = _Persona(rng, c)
        day = date(2025, 1, 6) + timedelta(days=7 * c)
        sessions: list[Session] = []
        for _ in range(sessions_per_conversation):
            turns: list[Turn] = []
            for _ in range(turns_per_session):
                if rng.random() < statement_ratio:
                    user = persona.statement(day)
                    if rng.random() < 0.5:
                        user += " " + rng.choice(_SMALL_TALK)
                else:
                    user = rng.choice(_SMALL_TALK)
                turns.append(Turn(user=user, assistant=rng.choice(_ANSWERS)))
            sessions.append(Session(day=day, turns=tuple(turns)))
            day += timedelta(days=rng.randint(1, 9))
        conversations.append(Conversation(user_id=f"bench-user-{c}", sessions=tuple(sessions)))
    return conversations


def raw_tokens(conversations: list[Conversation]) -> int:
    """Tokens of the chat text itself (user + assistant contents), the cost denominator."""
    return sum(
        count_tokens(t.user) + count_tokens(t.assistant) for c in conversations for t in c.turns()
    )
