"""The offline stand-in LLM, driven through the real ``openai`` clients (transport-injected).

Every prompt comes from the engine's builders and every answer goes through the engine's
parsers, so these tests pin the contract the pipeline relies on.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import struct
import time
from typing import Any

import httpx
import openai
import pytest

import memobase_integrations.testing as testing_module
from memobase_integrations.engine.config import ProfileConfig, ResolvedConfig
from memobase_integrations.engine.parsing import (
    NOTHING,
    Fact,
    MergeDecision,
    parse_entry_summary,
    parse_event_tags,
    parse_extract,
    parse_merge,
    parse_organize,
    parse_pick_ids,
    parse_resummary,
)
from memobase_integrations.engine.prompts import (
    MergeItem,
    Step,
    already_logged,
    entry_summary_prompt,
    event_tagging_prompt,
    extract_prompt,
    merge_prompt,
    organize_prompt,
    pick_profiles_prompt,
    resummary_prompt,
)
from memobase_integrations.messages import render_blob
from memobase_integrations.models import ChatBlob, OpenAICompatibleMessage, Profile
from memobase_integrations.settings import LLMSettings
from memobase_integrations.testing import LABEL, StandInLLM
from memobase_integrations.tokens import count_tokens

EN = ProfileConfig().resolve()


def _blob(*turns: tuple[str, str], day: str = "2025/01/14") -> ChatBlob:
    return ChatBlob(
        messages=[
            OpenAICompatibleMessage(role=role, content=text, created_at=day)  # type: ignore[arg-type]
            for role, text in turns
        ]
    )


def _ask(client: openai.OpenAI, step: Step | None, prompt: tuple[str, str]) -> str:
    headers = {"X-Memobase-Step": str(step)} if step is not None else {}
    response = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": prompt[0]},
            {"role": "user", "content": prompt[1]},
        ],
        temperature=0.2,
        extra_headers=headers,
    )
    return response.choices[0].message.content or ""


class Flush:
    """Entry summary -> extract -> merge through an openai client, like the pipeline does."""

    def __init__(self, client: openai.OpenAI, cfg: ResolvedConfig = EN) -> None:
        self.client = client
        self.cfg = cfg
        self.profile: dict[tuple[str, str], str] = {}

    def run(self, blob: ChatBlob) -> tuple[str, list[Fact], dict[int, MergeDecision]]:
        rows = [(t, s, c) for (t, s), c in self.profile.items()]
        logged = already_logged(rows, self.cfg)
        memo = parse_entry_summary(
            _ask(
                self.client,
                Step.entry_summary,
                entry_summary_prompt(render_blob(blob), logged, self.cfg),
            )
        )
        if not memo:
            return memo, [], {}
        facts = parse_extract(
            _ask(self.client, Step.extract_profile, extract_prompt(memo, logged, self.cfg)),
            self.cfg,
        )
        items = [
            MergeItem.for_slot(
                i,
                f.topic,
                f.sub_topic,
                f.memo,
                self.profile.get((f.topic, f.sub_topic), ""),
                self.cfg,
            )
            for i, f in enumerate(facts, start=1)
        ]
        decisions = parse_merge(
            _ask(self.client, Step.merge_profile, merge_prompt(items, self.cfg)), len(items)
        )
        for item in items:
            decision = decisions.get(item.memo_id)
            key = (item.topic, item.sub_topic)
            if decision is None or decision.action == "ABORT":
                continue
            if decision.action == "UPDATE":
                self.profile[key] = decision.memo or item.new_info
            elif key in self.profile:
                self.profile[key] = f"{self.profile[key]};{item.new_info}"
            else:
                self.profile[key] = item.new_info
        return memo, facts, decisions


@pytest.fixture
def llm() -> StandInLLM:
    return StandInLLM()


def test_label_is_explicit() -> None:
    assert LABEL == "offline stand-in LLM (deterministic rules, not a real model)"
    assert "not a model" in (testing_module.__doc__ or "")
    assert LABEL in repr(StandInLLM())


def test_name_job_and_hobby_become_profile_facts(llm: StandInLLM) -> None:
    flush = Flush(llm.client())
    memo, facts, decisions = flush.run(
        _blob(
            ("user", "Hi! My name is Alice Chen and I'm a software engineer at Acme Corp."),
            ("assistant", "Nice to meet you, Alice! What do you do for fun?"),
            ("user", "I love hiking in the mountains on weekends. I live in Berlin."),
        )
    )
    assert "- User's name is Alice Chen. [mention 2025/01/14] // info" in memo.split("\n")
    slots = {(f.topic, f.sub_topic): f.memo for f in facts}
    assert slots[("basic_info", "name")] == "Alice Chen"
    assert slots[("work", "title")] == "software engineer [mention 2025/01/14]"
    assert slots[("work", "company")] == "Acme Corp [mention 2025/01/14]"
    assert slots[("interest", "sports")].startswith("hiking in the mountains on weekends")
    assert slots[("contact_info", "city")].startswith("Berlin")
    assert all(d.action == "APPEND" for d in decisions.values())
    assert len(decisions) == len(facts)


def test_job_change_gives_update_with_the_new_job(llm: StandInLLM) -> None:
    flush = Flush(llm.client())
    flush.run(_blob(("user", "I work as a software engineer at Acme Corp.")))
    assert flush.profile[("work", "title")].startswith("software engineer")
    _, facts, decisions = flush.run(
        _blob(
            ("user", "Big news: I got a new job as a product manager at Initech!"), day="2025/03/01"
        )
    )
    by_slot = {(f.topic, f.sub_topic): i for i, f in enumerate(facts, start=1)}
    title = decisions[by_slot[("work", "title")]]
    company = decisions[by_slot[("work", "company")]]
    assert title.action == "UPDATE" and title.memo is not None
    assert title.memo.startswith("product manager")
    assert company == MergeDecision("UPDATE", "Initech [mention 2025/03/01]")
    assert flush.profile[("work", "title")].startswith("product manager")


def test_repeated_fact_is_aborted_and_new_interest_is_appended(llm: StandInLLM) -> None:
    flush = Flush(llm.client())
    flush.run(_blob(("user", "My name is Gus. I enjoy tennis.")))
    _, facts, decisions = flush.run(_blob(("user", "My name is Gus. I also enjoy swimming.")))
    actions = {(f.topic, f.sub_topic): decisions[i].action for i, f in enumerate(facts, start=1)}
    assert actions[("basic_info", "name")] == "ABORT"
    assert actions[("interest", "sports")] == "APPEND"
    assert flush.profile[("interest", "sports")].startswith("tennis")
    assert "swimming" in flush.profile[("interest", "sports")]


def test_greeting_only_chat_gives_an_empty_summary(llm: StandInLLM) -> None:
    flush = Flush(llm.client())
    memo, facts, _ = flush.run(
        _blob(("user", "Hi there!"), ("assistant", "Hello! How can I help?"))
    )
    assert memo == "" and facts == []
    assert llm.calls == 1 and llm.calls_by_step == {"entry_summary": 1}
    assert llm.history[0].answer == NOTHING  # "nothing to keep" is an explicit answer


def test_assistant_statements_are_not_user_facts(llm: StandInLLM) -> None:
    system, user = entry_summary_prompt(
        render_blob(_blob(("assistant", "My name is Botty and I live in the cloud."))), "", EN
    )
    assert llm.complete(Step.entry_summary, system, user) == NOTHING  # said, never empty


def test_relative_dates_use_the_message_timestamp(llm: StandInLLM) -> None:
    blob = _blob(
        ("user", "I'm flying to Tokyo next Friday."),
        ("user", "I have a dentist appointment tomorrow."),
        day="2025-01-14T09:30:00+00:00",  # a Tuesday
    )
    memo = parse_entry_summary(
        llm.complete(Step.entry_summary, *entry_summary_prompt(render_blob(blob), "", EN))
    )
    assert "- User is going to Tokyo. [mention 2025/01/14, trip in 2025/01/24] // schedule" in memo
    assert "[mention 2025/01/14, dentist appointment in 2025/01/15] // schedule" in memo
    facts = parse_extract(llm.complete(Step.extract_profile, *extract_prompt(memo, "", EN)), EN)
    slots = {(f.topic, f.sub_topic): f.memo for f in facts}
    assert (
        slots[("life_event", "travel")] == "trip to Tokyo [mention 2025/01/14, trip in 2025/01/24]"
    )
    assert "2025/01/15" in slots[("life_event", "plans")]


async def test_every_step_through_async_openai(llm: StandInLLM) -> None:
    client = llm.async_client()
    tagged = ProfileConfig(event_tags=["emotion", "location"]).resolve()  # type: ignore[list-item]

    async def ask(step: Step, prompt: tuple[str, str]) -> str:
        response = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[
                {"role": "system", "content": prompt[0]},
                {"role": "user", "content": prompt[1]},
            ],
            extra_headers={"X-Memobase-Step": str(step)},
        )
        return response.choices[0].message.content or ""

    blob = _blob(("user", "I'm Dana, I just moved to Lisbon and I'm so excited! I love jazz."))
    memo = parse_entry_summary(
        await ask(Step.entry_summary, entry_summary_prompt(render_blob(blob), "", tagged))
    )
    assert "User moved to Lisbon." in memo
    facts = parse_extract(await ask(Step.extract_profile, extract_prompt(memo, "", tagged)), tagged)
    assert Fact("basic_info", "name", "Dana") in facts
    assert ("life_event", "relocation") in {(f.topic, f.sub_topic) for f in facts}
    items = [MergeItem.for_slot(1, "contact_info", "city", "Lisbon", "Berlin", tagged)]
    assert parse_merge(await ask(Step.merge_profile, merge_prompt(items, tagged)), 1) == {
        1: MergeDecision("UPDATE", "Lisbon")
    }
    tags = parse_event_tags(
        await ask(Step.event_tagging, event_tagging_prompt(memo, tagged)), tagged
    )
    assert {(t.tag, t.value) for t in tags} == {("location", "Lisbon"), ("emotion", "excited")}
    rows = [(f"s{i}", f"memo {i}") for i in range(17)] + [("sports", "tennis")]
    organized = parse_organize(
        await ask(Step.organize_profile, organize_prompt("interest", rows, tagged)), 8
    )
    assert len(organized) == 8
    assert organized[0] == ("sports", "tennis")  # a suggested default sub-topic comes first
    assert organized[-1][0] == "others" and "memo 16" in organized[-1][1]
    long_memo = "; ".join(["likes tea", "likes tea", "hikes", "plays chess", "reads", "cooks"])
    short = parse_resummary(await ask(Step.summary_profile, resummary_prompt(long_memo, tagged)))
    assert short == "likes tea; hikes; plays chess"
    profiles = [
        Profile.model_validate(
            {
                "id": "00000000-0000-4000-8000-00000000000" + str(i),
                "content": c,
                "attributes": {"topic": t, "sub_topic": s},
            }
        )
        for i, (t, s, c) in enumerate(
            [
                ("work", "title", "baker"),
                ("interest", "sports", "hiking"),
                ("contact_info", "city", "Berlin"),
            ]
        )
    ]
    chats = [OpenAICompatibleMessage(role="user", content="Any hiking trail near Berlin?")]
    picked = parse_pick_ids(
        await ask(Step.pick_related_profiles, pick_profiles_prompt(chats, profiles, tagged))
    )
    assert sorted(picked) == [1, 2]
    assert llm.calls == 7
    assert set(llm.calls_by_step) == {str(s) for s in Step}


def test_step_is_guessed_from_the_prompt_without_the_header(llm: StandInLLM) -> None:
    client = llm.client()
    answer = _ask(client, None, extract_prompt("- User's name is Gus. // info", "", EN))
    assert parse_extract(answer, EN) == [Fact("basic_info", "name", "Gus")]
    assert llm.calls_by_step == {"extract_profile": 1}


def test_strict_mode_answers_only_configured_slots(llm: StandInLLM) -> None:
    strict = ProfileConfig.from_yaml(
        "profile_strict_mode: true\noverwrite_user_profiles:\n  - topic: work\n"
        "    sub_topics: [title, company]\n  - topic: interest\n    sub_topics: [sports]\n"
    ).resolve()
    memo = (
        "- User's name is Alice Chen. // info\n"
        "- User works as software engineer at Acme Corp. // info\n"
        "- User enjoys hiking. // info\n"
        "- User lives in Berlin. // info"
    )
    answer = llm.complete(Step.extract_profile, *extract_prompt(memo, "", strict))
    assert "basic_info" not in answer and "contact_info" not in answer
    assert {(f.topic, f.sub_topic) for f in parse_extract(answer, strict)} == {
        ("work", "title"),
        ("work", "company"),
        ("interest", "sports"),
    }


def test_chinese_flow(llm: StandInLLM) -> None:
    zh = ProfileConfig(language="zh").resolve()
    blob = _blob(("user", "你好，我叫小林，我住在杭州。我喜欢爬山。"))
    flush = Flush(llm.client(), zh)
    memo, facts, _ = flush.run(blob)
    assert "用户名叫小林。" in memo
    assert {(f.topic, f.sub_topic, f.memo.split(" [")[0]) for f in facts} >= {
        ("基本信息", "姓名", "小林"),
        ("联系信息", "城市", "杭州"),
        ("兴趣爱好", "运动", "爬山"),
    }
    _, _, decisions = flush.run(_blob(("user", "我搬到了上海。"), day="2025/02/01"))
    assert MergeDecision("UPDATE", "上海 [mention 2025/02/01]") in decisions.values()


def test_counters_match_the_usage_the_client_sees(llm: StandInLLM) -> None:
    client = llm.client()
    prompt = extract_prompt("- User's name is Gus. // info", "", EN)
    response = client.chat.completions.create(
        model="m",
        messages=[{"role": "system", "content": prompt[0]}, {"role": "user", "content": prompt[1]}],
        extra_headers={"X-Memobase-Step": "extract_profile"},
    )
    content = response.choices[0].message.content or ""
    assert response.usage is not None
    assert response.usage.prompt_tokens == count_tokens(prompt[0]) + count_tokens(prompt[1])
    assert response.usage.completion_tokens == count_tokens(content)
    _ask(client, Step.merge_profile, merge_prompt([], EN))
    assert llm.calls == 2
    assert llm.calls_by_step == {"extract_profile": 1, "merge_profile": 1}
    merge_tokens = sum(count_tokens(p) for p in merge_prompt([], EN))
    assert llm.prompt_tokens == response.usage.prompt_tokens + merge_tokens
    assert llm.completion_tokens == sum(c.completion_tokens for c in llm.history)
    assert [c.step for c in llm.history] == ["extract_profile", "merge_profile"]
    stats = llm.stats()
    assert stats["calls"] == 2 and stats["prompt_tokens"] == llm.prompt_tokens
    llm.reset()
    assert llm.calls == 0 and llm.prompt_tokens == 0 and not llm.history and not llm.calls_by_step


# -- faults ------------------------------------------------------------------------------------


def _entry(client: openai.OpenAI) -> str:
    blob = _blob(("user", "My name is Gus and I work as a baker. I love sushi."))
    return _ask(client, Step.entry_summary, entry_summary_prompt(render_blob(blob), "", EN))


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("timeout", openai.APITimeoutError),
        ("http500", openai.InternalServerError),
        ("http429", openai.RateLimitError),
        # openai lets the JSONDecodeError of a non-JSON body escape as is: the engine's LLM
        # client has to turn it into an LLMError itself.
        ("invalid_json", json.JSONDecodeError),
    ],
)
def test_transport_faults_raise_the_openai_errors(
    llm: StandInLLM, kind: str, error: type[Exception]
) -> None:
    client = llm.client()
    llm.fail_next(Step.entry_summary, kind)  # type: ignore[arg-type]
    with pytest.raises(error):
        _entry(client)
    assert "User's name is Gus." in _entry(client)  # one failure only
    assert llm.faults_triggered == 1
    assert llm.calls == 2


def test_content_faults(llm: StandInLLM) -> None:
    client = llm.client()
    good = _entry(client)
    llm.fail_next(kind="empty")
    assert _entry(client) == ""
    llm.fail_next(kind="garbage")
    garbage = _entry(client)
    assert garbage and parse_entry_summary(garbage) != good
    assert parse_extract(garbage, EN) == []
    assert parse_merge(garbage, 3) == {}
    llm.fail_next(Step.extract_profile, "half-formatted")  # type: ignore[arg-type]
    memo = parse_entry_summary(good)
    half = _ask(client, Step.extract_profile, extract_prompt(memo, "", EN))
    full = _ask(client, Step.extract_profile, extract_prompt(memo, "", EN))
    assert 0 < len(parse_extract(half, EN)) < len(parse_extract(full, EN))
    assert [c.fault for c in llm.history] == [None, "empty", "garbage", "half_formatted", None]


def test_fault_scoping_repetition_and_clearing(llm: StandInLLM) -> None:
    client = llm.client()
    llm.fail_next(Step.merge_profile, "empty", times=None)
    assert _entry(client) != ""  # another step is not affected
    assert _ask(client, Step.merge_profile, merge_prompt([], EN)) == ""
    assert _ask(client, Step.merge_profile, merge_prompt([], EN)) == ""
    llm.clear_faults()
    assert _ask(client, Step.merge_profile, merge_prompt([], EN)) != ""
    llm.fail_next(kind="http500", times=2)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            _entry(client)
    assert _entry(client)
    with pytest.raises(ValueError, match="Unknown fault kind"):
        llm.fail_next(kind="explode")  # type: ignore[arg-type]


def test_retries_of_the_openai_client_recover_from_one_fault(llm: StandInLLM) -> None:
    client = llm.client(max_retries=2)
    llm.fail_next(Step.entry_summary, "http500")
    assert "Gus" in _entry(client.with_options(timeout=5))
    assert llm.calls_by_step["entry_summary"] == 2


# -- embeddings --------------------------------------------------------------------------------


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_embeddings_default_base64_path_of_the_openai_client(llm: StandInLLM) -> None:
    client = llm.client()
    texts = [
        "Any hiking trail near Berlin?",
        "- User enjoys hiking in the mountains. // info",
        "- User works as a baker. // info",
    ]
    result = client.embeddings.create(model="text-embedding-3-small", input=texts, dimensions=64)
    vectors = [d.embedding for d in result.data]
    assert [len(v) for v in vectors] == [64, 64, 64]
    assert all(math.isclose(math.sqrt(sum(x * x for x in v)), 1.0, rel_tol=1e-5) for v in vectors)
    assert _cosine(vectors[0], vectors[1]) > _cosine(vectors[0], vectors[2])
    again = client.embeddings.create(model="m", input=texts[0], dimensions=64).data[0].embedding
    assert again == pytest.approx(vectors[0])
    assert llm.embedding_calls == 2 and llm.calls == 0
    assert llm.embedding_tokens == sum(count_tokens(t) for t in texts) + count_tokens(texts[0])


def test_embeddings_float_format_and_default_dimensions() -> None:
    llm = StandInLLM(embedding_dim=16)
    with httpx.Client(transport=llm.transport()) as http:
        body = http.post(
            "http://stand-in.invalid/v1/embeddings",
            json={"model": "m", "input": "hello", "encoding_format": "float"},
        ).json()
        assert len(body["data"][0]["embedding"]) == 16
        encoded = http.post(
            "http://stand-in.invalid/v1/embeddings",
            json={"model": "m", "input": ["hello"], "encoding_format": "base64"},
        ).json()["data"][0]["embedding"]
    decoded = list(struct.unpack("<16f", base64.b64decode(encoded)))
    assert decoded == pytest.approx(body["data"][0]["embedding"])
    assert llm.embed(["hello"])[0] == pytest.approx(decoded)


def test_embedding_faults_are_asked_for_by_name(llm: StandInLLM) -> None:
    client = llm.client()
    llm.fail_next(kind="http500")  # "any step" means chat steps
    client.embeddings.create(model="m", input="x", dimensions=8)
    llm.clear_faults()
    llm.fail_next("embedding", "http500")
    with pytest.raises(openai.InternalServerError):
        client.embeddings.create(model="m", input="x", dimensions=8)
    llm.fail_next("embedding", "garbage")
    wrong = client.embeddings.create(model="m", input="x", dimensions=8).data[0].embedding
    assert len(wrong) != 8  # a dimension mismatch the pipeline must survive


# -- wiring ------------------------------------------------------------------------------------


async def test_settings_wire_both_clients(llm: StandInLLM) -> None:
    settings = llm.settings(best_model="stand-in-model", enable_embeddings=True)
    assert isinstance(settings, LLMSettings)
    assert settings.configured and settings.enable_embeddings
    assert settings.best_model == "stand-in-model"
    assert settings.base_url == "http://stand-in.invalid/v1"
    assert settings.api_key is not None and "api_key=SecretStr('**********')" in repr(settings)
    assert settings.http_client is not None and settings.async_http_client is not None
    sync_client = openai.OpenAI(
        api_key=settings.api_key.get_secret_value(),
        base_url=settings.base_url,
        http_client=settings.http_client,  # type: ignore[arg-type]
    )
    assert "Gus" in _entry(sync_client)
    async_client = openai.AsyncOpenAI(
        api_key=settings.api_key.get_secret_value(),
        base_url=settings.base_url,
        http_client=settings.async_http_client,  # type: ignore[arg-type]
    )
    blob = _blob(("user", "My name is Gus."))
    response = await async_client.chat.completions.create(
        model=settings.best_model,
        messages=[{"role": "user", "content": entry_summary_prompt(render_blob(blob), "", EN)[1]}],
        extra_headers={"X-Memobase-Step": "entry_summary"},
    )
    assert response.model == "stand-in-model"
    assert "Gus" in (response.choices[0].message.content or "")


def test_serve_runs_a_real_loopback_server(llm: StandInLLM) -> None:
    with llm.serve() as base_url:
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        client = openai.OpenAI(api_key="stand-in", base_url=base_url, max_retries=0, timeout=5)
        assert "Gus" in _entry(client)
        assert client.models.list().data[0].id == "stand-in"
        llm.fail_next(kind="timeout")
        with pytest.raises(openai.APIConnectionError):
            _entry(client)
        assert (
            len(client.embeddings.create(model="m", input="hi", dimensions=4).data[0].embedding)
            == 4
        )
    assert llm.calls == 2


def test_simulated_latency_sleeps_in_sync(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)  # the stand-in's time.sleep
    llm = StandInLLM(delay_s=0.25, per_token_delay_s=0.01)
    _entry(llm.client())
    assert slept == [pytest.approx(0.25 + 0.01 * llm.completion_tokens)]


async def test_simulated_latency_awaits_in_async(monkeypatch: pytest.MonkeyPatch) -> None:
    awaited: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        awaited.append(seconds)

    def forbidden(seconds: float) -> None:  # pragma: no cover - the failure path
        raise AssertionError("the async transport must not block the event loop")

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    monkeypatch.setattr(time, "sleep", forbidden)
    llm = StandInLLM(delay_s=0.5)
    client = llm.async_client()
    await client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"X-Memobase-Step": "summary_profile"},
    )
    assert awaited == [0.5]


def test_foreign_prompts_get_a_generic_answer(llm: StandInLLM) -> None:
    client = llm.client()
    messages: list[Any] = [
        {"role": "system", "content": "Extract memories. Return JSON with a memory list."},
        {
            "role": "user",
            "content": "## New Messages\n"
            + json.dumps(
                [
                    {"role": "user", "content": "I'm Marcus and I live in Toronto."},
                    {"role": "assistant", "content": "My name is Bot."},
                ]
            ),
        },
    ]
    response = client.chat.completions.create(
        model="m", messages=messages, response_format={"type": "json_object"}
    )
    data = json.loads(response.choices[0].message.content or "")
    texts = [m["text"] for m in data["memory"]]
    assert texts == ["User's name is Marcus.", "User lives in Toronto."]
    assert llm.calls_by_step == {"unknown": 1}
    plain = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "user: I love chess"}]
    )
    assert plain.choices[0].message.content == "- User loves chess."


def test_unknown_paths_and_streaming_are_refused(llm: StandInLLM) -> None:
    with httpx.Client(transport=llm.transport()) as http:
        assert http.post("http://stand-in.invalid/v1/completions", json={}).status_code == 404
        assert (
            http.post("http://stand-in.invalid/v1/chat/completions", content=b"{").status_code
            == 400
        )
        streamed = http.post(
            "http://stand-in.invalid/v1/chat/completions",
            json={"model": "m", "messages": [], "stream": True},
        )
        assert streamed.status_code == 400


def test_async_transport_is_usable_from_many_tasks(llm: StandInLLM) -> None:
    async def main() -> list[str]:
        client = llm.async_client()

        async def one(name: str) -> str:
            blob = _blob(("user", f"My name is {name}."))
            response = await client.chat.completions.create(
                model="m",
                messages=[
                    {"role": "system", "content": entry_summary_prompt("", "", EN)[0]},
                    {"role": "user", "content": entry_summary_prompt(render_blob(blob), "", EN)[1]},
                ],
            )
            return response.choices[0].message.content or ""

        return await asyncio.gather(*(one(n) for n in ("Ann", "Bob", "Cid", "Dee")))

    answers = asyncio.run(main())
    assert [a.split("\n")[0] for a in answers] == [
        f"- User's name is {n}. [mention 2025/01/14] // info" for n in ("Ann", "Bob", "Cid", "Dee")
    ]
    assert llm.calls == 4


def test_embeddings_place_related_words_near_each_other() -> None:
    """The stand-in's vectors carry some meaning (a concept lexicon), so vector search finds
    paraphrases that words miss: "Portugal" is near "Lisbon" with no word in common, an exact
    word still counts, and unrelated texts stay apart."""
    from memobase_integrations.testing import embed_text

    def cos(a: str, b: str) -> float:
        pairs = zip(embed_text(a, 256), embed_text(b, 256), strict=True)
        return math.fsum(x * y for x, y in pairs)

    lisbon = "User's sister Clara lives in Lisbon."
    assert cos("family in Portugal", lisbon) > 0.3
    assert cos("Clara", lisbon) > 0.3  # a name the lexicon does not know: its word
    assert abs(cos("family in Portugal", "User plays the cello.")) < 0.1
    assert cos("hiking", "hikes") == pytest.approx(1.0)  # one stem
    assert embed_text(lisbon, 64) == embed_text(lisbon, 64)
    assert math.fsum(v * v for v in embed_text(lisbon, 64)) == pytest.approx(1.0)


def test_the_stand_ins_summary_never_ends_inside_a_bracket() -> None:
    # A benchmark run (the 1,000-message growth point) had its summary cut by the 40-word
    # limit inside "[mention 2026/12/07, plan in ...": the validator refused it, as it
    # would a real model's cut answer, and the user's turns were retried for ever.
    from memobase_integrations.engine.validation import summary_problem
    from memobase_integrations.testing._answers import summary

    memo = "; ".join(
        [
            "visits parents every second weekend in the countryside with the kids and the dog "
            "[mention 2026/12/07, plan in 2026/12/20]",
            "calls parents on Sundays after lunch when the children are asleep and the house "
            "is quiet [mention 2026/12/07, plan in the next weeks around the holidays]",
            "worries about parents' health",
        ]
    )
    got = summary("", memo)
    assert got and "[" not in got.rsplit("]", 1)[-1]
    assert not got.endswith((";", ",", ":"))
    assert summary_problem(memo, got) is None
