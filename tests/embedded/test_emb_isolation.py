"""Many users interleaved: no user's profile, event or gist reaches another user's context,
profile, events or search results (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid

from embedded.emb_support import MANUAL, BackendFactory, tapped_settings, turn

from memobase_integrations.messages import Message, turn_to_blobs
from memobase_integrations.values import ContextOptions, ProfileOptions

NAMES = ["Alice", "Bruno", "Chiara", "Dmitri", "Emeka", "Fatima", "Goran", "Hana"]
CITIES = ["Lisbon", "Oslo", "Nairobi", "Quito", "Hanoi", "Perth", "Tbilisi", "Lima"]
JOBS = ["nurse", "baker", "pilot", "plumber", "teacher", "dentist", "farmer", "lawyer"]


def test_interleaved_users_never_see_each_other(make_backend: BackendFactory) -> None:
    settings, _, _ = tapped_settings(enable_embeddings=True, embedding_dim=64)
    backend = make_backend(llm=settings, policy=MANUAL)
    users = [uuid.uuid4() for _ in NAMES]
    # Interleave: every user's first turn, then every user's second turn, then flush in a
    # scrambled order.
    for i, user in enumerate(users):
        backend.record(user, turn_to_blobs(turn(f"My name is {NAMES[i]}.")), "a")
    for i, user in enumerate(users):
        backend.record(
            user,
            turn_to_blobs(turn(f"I live in {CITIES[i]} and I work as a {JOBS[i]}.")),
            "b",
        )
    for i in [3, 0, 7, 1, 6, 2, 5, 4]:
        backend.flush(users[i])

    for i, user in enumerate(users):
        others = [
            v
            for j, values in enumerate(zip(NAMES, CITIES, JOBS, strict=True))
            if j != i
            for v in values
        ]
        own = (NAMES[i], CITIES[i], JOBS[i])
        chats = [Message.of("user", f"What is there to do in {CITIES[(i + 1) % 8]}?")]
        texts = [
            backend.context(user, ContextOptions()),
            backend.context(user, ContextOptions(chats=chats, event_similarity_threshold=-1.0)),
            " ".join(p.content for p in backend.profile(user, ProfileOptions())),
            " ".join(e.event_data.event_tip or "" for e in backend.events(user, topk=50)),
            " ".join(
                g.gist_data.content
                for g in backend.search_gists(user, CITIES[(i + 1) % 8], similarity_threshold=-1)
            ),
            " ".join(
                e.event_data.event_tip or ""
                for e in backend.search_events(user, JOBS[(i + 2) % 8], similarity_threshold=-1)
            ),
        ]
        assert all(value in texts[0] for value in own)
        for text in texts:
            leaked = [value for value in others if value in text]
            assert leaked == [], (NAMES[i], leaked)
        export = str(backend.export_user(user))
        assert not [value for value in others if value in export]
