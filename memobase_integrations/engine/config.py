"""The profile configuration: which topics / sub-topics the engine fills, and how.

Memobase lets a project describe the profile it wants in YAML (``POST /project/profile_config``);
this module gives that YAML a typed, validated form (:class:`ProfileConfig`) with Memobase's
semantics, and resolves it into the flat view the pipeline needs (:class:`ResolvedConfig`):

* the default slots (8 topics / 36 sub-topics in English, 9 topics in Chinese) unless
  ``overwrite_user_profiles`` replaces them; ``additional_user_profiles`` is appended to them;
* ``profile_strict_mode`` limits extraction to the configured slots;
* ``profile_validate_mode`` decides whether brand-new slots still go through the merge LLM;
* ``event_tags`` (names normalised) turn on event tagging.

One deliberate difference from the server: a topic in ``additional_user_profiles`` that already
exists is merged into it (its new sub-topics are added, a repeated sub-topic takes the new
description) instead of listing the topic twice in every prompt. Errors are explicit
:class:`~memobase_integrations.errors.ValidationError` messages naming the field and the fix,
where the server would answer errno 500 for a malformed topic item.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, StrictBool, StrictStr, field_validator

from ..errors import ConfigurationError, ValidationError

__all__ = [
    "DEFAULT_EVENT_THEME_REQUIREMENT",
    "DEFAULT_TOPICS",
    "MAX_CONFIG_CHARS",
    "EventTagConfig",
    "EventTagSpec",
    "Language",
    "ProfileConfig",
    "ResolvedConfig",
    "SlotSpec",
    "SubTopicConfig",
    "TopicConfig",
    "TopicSpec",
    "UnknownKeys",
    "attribute_unify",
]

log = logging.getLogger(__name__)

Language = Literal["en", "zh"]
#: What ``from_yaml`` / ``from_mapping`` do with a top-level key they do not know.
UnknownKeys = Literal["refuse", "ignore"]

#: The server refuses longer configs ("Profile config is too long").
MAX_CONFIG_CHARS = 65535

#: Memobase's default thresholds (``config.yaml``): organize a topic with more sub-topics than
#: this, re-summarize a memo longer than that many tokens.
MAX_PROFILE_SUBTOPICS = 15
MAX_PRE_PROFILE_TOKEN_SIZE = 128
#: A re-summarized memo is cut to this many tokens (plus "...").
RESUMMARY_MAX_TOKENS = 64

DEFAULT_EVENT_THEME_REQUIREMENT: dict[Language, str] = {
    "en": "Focus on the user's own facts, plans and experiences, not on the requests they make.",
    "zh": "关注用户本人的信息、计划和经历，而不是用户提出的指令。",
}


def attribute_unify(name: str) -> str:
    """Normalise a topic, sub-topic or tag name: lowercase, trimmed, spaces become ``_``.

    Every name the engine stores or compares goes through this, so "Basic Info" from a config
    and "basic_info" from an LLM answer are the same slot.
    """
    return "_".join(name.strip().lower().split())


# -- the YAML shapes ---------------------------------------------------------------------------


class _Strict(BaseModel):
    # Unknown keys inside a topic item are almost always typos ("subtopics"); failing loudly
    # beats silently dropping what the user meant to configure.
    model_config = ConfigDict(extra="forbid", frozen=True)


class SubTopicConfig(_Strict):
    """One sub-topic: a bare name in YAML, or a mapping with the optional extras."""

    name: StrictStr
    description: StrictStr | None = None
    update_description: StrictStr | None = None
    validate_value: StrictBool | None = None

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the sub-topic name is empty")
        return value


class TopicConfig(_Strict):
    """One topic with its sub-topics (``{topic, description?, sub_topics: [...]}``)."""

    topic: StrictStr
    description: StrictStr | None = None
    sub_topics: list[SubTopicConfig] = []

    @field_validator("topic")
    @classmethod
    def _topic_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the topic name is empty")
        return value

    @field_validator("sub_topics", mode="before")
    @classmethod
    def _bare_names(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value


class EventTagConfig(_Strict):
    """An event tag: a bare name or ``{name, description?}``."""

    name: StrictStr
    description: StrictStr | None = None

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the event tag name is empty")
        return value


def _topics(*items: tuple[str, Sequence[str | tuple[str, str]]]) -> tuple[TopicConfig, ...]:
    out = []
    for topic, subs in items:
        sub_models = [
            SubTopicConfig(name=s)
            if isinstance(s, str)
            else SubTopicConfig(name=s[0], description=s[1])
            for s in subs
        ]
        out.append(TopicConfig(topic=topic, sub_topics=sub_models))
    return tuple(out)


#: The default slots per language (Memobase's layout; the Chinese sub-topics are our own).
DEFAULT_TOPICS: dict[Language, tuple[TopicConfig, ...]] = {
    "en": _topics(
        (
            "basic_info",
            [
                "name",
                ("age", "integer"),
                "gender",
                "birth_date",
                "nationality",
                "ethnicity",
                "language_spoken",
            ],
        ),
        ("contact_info", ["email", "phone", "city", "country"]),
        ("education", ["school", "degree", "major"]),
        ("demographics", ["marital_status", "number_of_children", "household_income"]),
        (
            "work",
            ["company", "title", "working_industry", "previous_projects", "work_skills"],
        ),
        ("interest", ["books", "movies", "music", "foods", "sports"]),
        ("psychological", ["personality", "values", "beliefs", "motivations", "goals"]),
        ("life_event", ["marriage", "relocation", "retirement"]),
    ),
    "zh": _topics(
        ("基本信息", ["姓名", ("年龄", "整数"), "性别", "出生日期", "国籍", "民族", "使用语言"]),
        ("联系信息", ["邮箱", "电话", "城市", "国家"]),
        ("教育背景", ["学校", "学历", "专业"]),
        ("人口统计", ["婚姻状况", "子女数量", "家庭收入"]),
        ("工作", ["公司", "职位", "行业", "过往项目", "技能"]),
        ("兴趣爱好", ["书籍", "电影", "音乐", "美食", "运动"]),
        ("生活方式", ["饮食习惯", "作息", "运动习惯", "宠物"]),
        ("心理特征", ["性格", "价值观", "信仰", "动机", "目标"]),
        ("人生大事", ["婚姻", "搬迁", "退休"]),
    ),
}

_KNOWN_KEYS = (
    "language",
    "profile_strict_mode",
    "profile_validate_mode",
    "overwrite_user_profiles",
    "additional_user_profiles",
    "event_theme_requirement",
    "event_tags",
    "system_prompt",
)

_FIELD_HINTS: dict[str, str] = {
    "language": "Use 'en' or 'zh'.",
    "profile_strict_mode": "Use true or false.",
    "profile_validate_mode": "Use true or false.",
    "overwrite_user_profiles": (
        "Each item is {topic: str, description?: str, sub_topics: [name | {name, "
        "description?, update_description?, validate_value?: bool}]}."
    ),
    "additional_user_profiles": (
        "Each item is {topic: str, description?: str, sub_topics: [name | {name, "
        "description?, update_description?, validate_value?: bool}]}."
    ),
    "event_theme_requirement": "Use a plain string.",
    "event_tags": "Use a list of tag names or {name: str, description?: str} items.",
    "system_prompt": "Use a plain string.",
}


class ProfileConfig(BaseModel):
    """A project's profile configuration, the same keys as Memobase's ``profile_config`` YAML.

    ``None`` means "use the default" for every key, which is also what an empty YAML gives.
    Build it in Python, or with :meth:`from_yaml` / :meth:`from_file`.
    """

    # Unknown top-level keys are refused by from_yaml/from_mapping (a misspelt key would
    # otherwise silently do nothing, as on the server); a config already stored is read with
    # unknown_keys="ignore", so one written by another version still loads.
    model_config = ConfigDict(extra="ignore", frozen=True)

    language: Language | None = None
    profile_strict_mode: StrictBool | None = None
    profile_validate_mode: StrictBool | None = None
    overwrite_user_profiles: list[TopicConfig] | None = None
    additional_user_profiles: list[TopicConfig] | None = None
    event_theme_requirement: StrictStr | None = None
    event_tags: list[EventTagConfig] | None = None
    system_prompt: StrictStr | None = None

    @field_validator("language", mode="before")
    @classmethod
    def _language(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value.strip().lower()
        return value

    @field_validator("event_tags", mode="before")
    @classmethod
    def _bare_tags(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any] | None, *, unknown_keys: UnknownKeys = "refuse"
    ) -> ProfileConfig:
        """Validate a mapping (parsed YAML or a dict), raising our ValidationError.

        A top-level key this package does not know is refused with the closest known key
        ("Did you mean 'language'?"): the server ignores such keys, so a typo would
        silently leave the setting at its default. ``unknown_keys="ignore"`` (used for a
        config already stored, which must keep loading) logs and drops them instead.
        """
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ValidationError(
                f"The profile config must be a mapping of keys ({', '.join(_KNOWN_KEYS)}), "
                f"got {type(data).__name__}. Write it as 'key: value' lines."
            )
        unknown = sorted(str(k) for k in data if k not in _KNOWN_KEYS)
        if unknown and unknown_keys == "refuse":
            close = difflib.get_close_matches(unknown[0], _KNOWN_KEYS, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValidationError(
                f"Unknown profile config key {unknown[0]!r}.{hint} Known keys: "
                f"{', '.join(_KNOWN_KEYS)}. (The server would silently ignore it, leaving the "
                "setting at its default.)",
                detail={"unknown_keys": unknown},
            )
        if unknown:
            log.warning(
                "Ignoring unknown profile config keys %s (known keys: %s).",
                unknown,
                ", ".join(_KNOWN_KEYS),
            )
        try:
            return cls.model_validate(dict(data))
        except pydantic.ValidationError as exc:
            raise _convert_error(exc) from None

    @classmethod
    def from_yaml(cls, text: str | None, *, unknown_keys: UnknownKeys = "refuse") -> ProfileConfig:
        """Parse Memobase's profile-config YAML. Empty or ``None`` gives the defaults; unknown
        keys as in :meth:`from_mapping`."""
        if text is not None and not isinstance(text, str):
            raise ValidationError(
                f"The profile config must be YAML text (a str) or None, got {type(text).__name__}."
            )
        if text is None or not text.strip():
            return cls()
        if len(text) > MAX_CONFIG_CHARS:
            raise ValidationError(
                f"The profile config is too long ({len(text)} characters; the limit is "
                f"{MAX_CONFIG_CHARS}). Trim descriptions or drop unused topics."
            )
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValidationError(_yaml_message(exc)) from None
        return cls.from_mapping(data, unknown_keys=unknown_keys)

    @classmethod
    def from_file(cls, path: str | Path) -> ProfileConfig:
        """Read a YAML file (UTF-8)."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(
                f"Cannot read the profile config file {str(p)!r}: {exc.strerror or exc}. "
                "Check the path and its permissions."
            ) from None
        except UnicodeDecodeError as exc:
            raise ConfigurationError(
                f"The profile config file {str(p)!r} is not UTF-8 text (byte "
                f"{exc.object[exc.start]:#04x} at offset {exc.start}). Save it as UTF-8."
            ) from None
        return cls.from_yaml(text)

    @classmethod
    def coerce(cls, value: ProfileConfig | str | Mapping[str, Any] | None) -> ProfileConfig:
        """Accept a ProfileConfig, a YAML string, a mapping or None (the defaults)."""
        if isinstance(value, ProfileConfig):
            return value
        if value is None or isinstance(value, str):
            return cls.from_yaml(value)
        if isinstance(value, Mapping):
            return cls.from_mapping(value)
        raise ValidationError(
            f"A profile config must be a ProfileConfig, a YAML string or a dict, not "
            f"{type(value).__name__}."
        )

    def to_yaml(self) -> str:
        """The YAML form (only the keys that are set); ``from_yaml(to_yaml())`` round-trips."""
        data = self.model_dump(exclude_none=True)
        for key in ("overwrite_user_profiles", "additional_user_profiles"):
            for topic in data.get(key, []):
                if not topic.get("description"):
                    topic.pop("description", None)
                topic["sub_topics"] = [_compact(s) for s in topic["sub_topics"]]
        if "event_tags" in data:
            data["event_tags"] = [_compact(t) for t in data["event_tags"]]
        if not data:
            return ""
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)

    # -- resolution ---------------------------------------------------------------------------
    def resolve(self) -> ResolvedConfig:
        """The effective configuration the pipeline works with."""
        language: Language = self.language or "en"
        if self.overwrite_user_profiles is not None:
            topics = _merge_topics((), self.overwrite_user_profiles)
        else:
            topics = _merge_topics(DEFAULT_TOPICS[language], self.additional_user_profiles or [])
        strict = bool(self.profile_strict_mode)
        pairs = frozenset((t.name, s.name) for t in topics for s in t.sub_topics)
        tags: dict[str, EventTagSpec] = {}
        for tag in self.event_tags or []:
            name = attribute_unify(tag.name)
            tags[name] = EventTagSpec(name=name, description=tag.description or "")
        defaults = {
            t.topic: tuple(attribute_unify(s.name) for s in t.sub_topics)
            for t in DEFAULT_TOPICS[language]
        }
        return ResolvedConfig(
            language=language,
            topics=topics,
            strict_mode=strict,
            validate_mode=True
            if self.profile_validate_mode is None
            else self.profile_validate_mode,
            allowed_pairs=pairs,
            event_tags=tuple(tags.values()),
            event_theme_requirement=(
                self.event_theme_requirement
                if self.event_theme_requirement is not None
                else DEFAULT_EVENT_THEME_REQUIREMENT[language]
            ),
            system_prompt=self.system_prompt,
            default_sub_topics=defaults,
        )


def _compact(item: dict[str, Any]) -> Any:
    extras = {k: v for k, v in item.items() if k != "name" and v is not None}
    return item["name"] if not extras else {"name": item["name"], **extras}


def _yaml_message(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return (
        f"The profile config is not valid YAML{where}: {problem}. Check the indentation and "
        "close every bracket and quote; lists are '- item' lines or [a, b]."
    )


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(root)"


def _convert_error(exc: pydantic.ValidationError) -> ValidationError:
    first = exc.errors()[0]
    loc = tuple(first["loc"])
    where = _loc(loc)
    if first["type"] == "extra_forbidden":
        parent = _loc(loc[:-1])
        if loc[0] == "event_tags":
            allowed = "name, description"
        elif "sub_topics" in loc:
            allowed = "name, description, update_description, validate_value"
        else:
            allowed = "topic, description, sub_topics"
        message = (
            f"Unknown key {str(loc[-1])!r} in profile config item {parent}. Allowed keys there: "
            f"{allowed}."
        )
    else:
        hint = _FIELD_HINTS.get(str(loc[0]) if loc else "", "")
        message = f"Invalid profile config value at {where}: {first['msg']}. {hint}".rstrip()
    more = len(exc.errors()) - 1
    if more:
        message += f" ({more} more problem{'s' if more > 1 else ''} after this one.)"
    return ValidationError(message, detail=exc.errors(include_url=False))


def _merge_topics(
    base: Sequence[TopicConfig], extra: Sequence[TopicConfig]
) -> tuple[TopicSpec, ...]:
    topics: dict[str, dict[str, SlotSpec]] = {}
    descriptions: dict[str, str] = {}
    for item in (*base, *extra):
        name = attribute_unify(item.topic)
        slots = topics.setdefault(name, {})
        if item.description is not None or name not in descriptions:
            descriptions[name] = item.description or ""
        for sub in item.sub_topics:
            sub_name = attribute_unify(sub.name)
            slots[sub_name] = SlotSpec(
                topic=name,
                name=sub_name,
                description=sub.description or "",
                update_description=sub.update_description or "",
                validate_value=bool(sub.validate_value),
            )
    return tuple(
        TopicSpec(name=n, description=descriptions[n], sub_topics=tuple(s.values()))
        for n, s in topics.items()
    )


# -- the resolved view -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SlotSpec:
    """One (topic, sub_topic) slot with its guidance for the LLM."""

    topic: str
    name: str
    description: str = ""
    update_description: str = ""
    validate_value: bool = False


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    description: str
    sub_topics: tuple[SlotSpec, ...]


@dataclass(frozen=True, slots=True)
class EventTagSpec:
    name: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class ResolvedConfig:
    """What the pipeline, the prompts and the parsers read. Build it with ``resolve()``."""

    language: Language = "en"
    topics: tuple[TopicSpec, ...] = ()
    strict_mode: bool = False
    validate_mode: bool = True
    allowed_pairs: frozenset[tuple[str, str]] = frozenset()
    event_tags: tuple[EventTagSpec, ...] = ()
    event_theme_requirement: str = DEFAULT_EVENT_THEME_REQUIREMENT["en"]
    system_prompt: str | None = None
    #: The language's *default* sub-topics per topic; organize suggests them as targets.
    default_sub_topics: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    max_profile_subtopics: int = MAX_PROFILE_SUBTOPICS
    max_pre_profile_token_size: int = MAX_PRE_PROFILE_TOKEN_SIZE
    resummary_max_tokens: int = RESUMMARY_MAX_TOKENS

    @property
    def organize_target(self) -> int:
        """How many sub-topics organize regroups a crowded topic into (15 // 2 + 1 = 8)."""
        return self.max_profile_subtopics // 2 + 1

    def allows(self, topic: str, sub_topic: str) -> bool:
        """Whether a (normalised) slot may be written: always, unless strict mode is on."""
        return not self.strict_mode or (topic, sub_topic) in self.allowed_pairs

    def topic(self, name: str) -> TopicSpec | None:
        for t in self.topics:
            if t.name == name:
                return t
        return None

    def slot(self, topic: str, sub_topic: str) -> SlotSpec | None:
        t = self.topic(topic)
        if t is None:
            return None
        for s in t.sub_topics:
            if s.name == sub_topic:
                return s
        return None

    def event_tag_names(self) -> frozenset[str]:
        return frozenset(t.name for t in self.event_tags)
