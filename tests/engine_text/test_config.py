"""ProfileConfig: defaults, overwrite/additional, strict mode, tags, YAML errors."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
import yaml

from memobase_integrations.engine.config import (
    DEFAULT_TOPICS,
    MAX_CONFIG_CHARS,
    ProfileConfig,
    attribute_unify,
)
from memobase_integrations.errors import ConfigurationError, ValidationError

# The strict config recorded in the shared server fixture 08 (set_profile_config_strict).
STRICT_YAML = """profile_strict_mode: true
overwrite_user_profiles:
  - topic: work
    description: professional life
    sub_topics:
      - name: title
      - name: company
        description: employer name
  - topic: interest
    sub_topics:
      - sports
"""


def test_attribute_unify() -> None:
    assert attribute_unify("  Basic Info ") == "basic_info"
    assert attribute_unify("Work\tSkills") == "work_skills"
    assert attribute_unify("基本信息") == "基本信息"


def test_english_defaults() -> None:
    cfg = ProfileConfig().resolve()
    assert cfg.language == "en"
    assert [t.name for t in cfg.topics] == [
        "basic_info",
        "contact_info",
        "education",
        "demographics",
        "work",
        "interest",
        "psychological",
        "life_event",
    ]
    # Memobase's default list (server 0.0.42): 35 sub-topics.
    assert sum(len(t.sub_topics) for t in cfg.topics) == 35
    assert cfg.slot("basic_info", "age") is not None
    assert cfg.slot("basic_info", "age").description == "integer"  # type: ignore[union-attr]
    assert ("work", "title") in cfg.allowed_pairs
    assert not cfg.strict_mode and cfg.validate_mode
    assert cfg.allows("made_up", "slot")  # not strict: anything goes
    assert cfg.max_profile_subtopics == 15 and cfg.max_pre_profile_token_size == 128
    assert cfg.organize_target == 8
    assert cfg.event_tags == ()
    assert "user" in cfg.event_theme_requirement.lower()


def test_chinese_defaults() -> None:
    cfg = ProfileConfig(language="zh").resolve()
    assert [t.name for t in cfg.topics] == [t.topic for t in DEFAULT_TOPICS["zh"]]
    assert len(cfg.topics) == 9
    assert cfg.topics[0].name == "基本信息"
    assert all(t.sub_topics for t in cfg.topics)
    assert cfg.default_sub_topics["工作"][:2] == ("公司", "职位")


def test_language_is_case_insensitive_and_validated() -> None:
    assert ProfileConfig.from_yaml("language: ZH").resolve().language == "zh"
    with pytest.raises(ValidationError, match=r"language.*'en' or 'zh'"):
        ProfileConfig.from_yaml("language: fr")


def test_overwrite_replaces_and_strict_limits() -> None:
    cfg = ProfileConfig.from_yaml(STRICT_YAML).resolve()
    assert [t.name for t in cfg.topics] == ["work", "interest"]
    assert cfg.allowed_pairs == {("work", "title"), ("work", "company"), ("interest", "sports")}
    assert cfg.strict_mode
    assert cfg.allows("work", "title")
    assert not cfg.allows("basic_info", "name")
    assert cfg.slot("work", "company").description == "employer name"  # type: ignore[union-attr]
    assert cfg.topic("work").description == "professional life"  # type: ignore[union-attr]


def test_additional_is_appended_and_merges_into_existing_topics() -> None:
    yaml_text = """
additional_user_profiles:
  - topic: Pets
    description: the user's animals
    sub_topics:
      - Dog Names
      - name: cats
        update_description: keep every cat ever mentioned
        validate_value: true
  - topic: work
    sub_topics:
      - name: title
        description: current job title only
      - side_projects
"""
    cfg = ProfileConfig.from_yaml(yaml_text).resolve()
    names = [t.name for t in cfg.topics]
    assert names[:8] == [t.topic for t in DEFAULT_TOPICS["en"]]
    assert names[8:] == ["pets"]
    pets = cfg.topic("pets")
    assert pets is not None and [s.name for s in pets.sub_topics] == ["dog_names", "cats"]
    cats = cfg.slot("pets", "cats")
    assert cats is not None and cats.validate_value and "every cat" in cats.update_description
    work = cfg.topic("work")
    assert work is not None
    assert [s.name for s in work.sub_topics][-1] == "side_projects"
    assert [s.name for s in work.sub_topics].count("title") == 1
    assert cfg.slot("work", "title").description == "current job title only"  # type: ignore[union-attr]


def test_overwrite_wins_over_additional() -> None:
    cfg = ProfileConfig(
        overwrite_user_profiles=[{"topic": "a", "sub_topics": ["b"]}],  # type: ignore[list-item]
        additional_user_profiles=[{"topic": "c", "sub_topics": ["d"]}],  # type: ignore[list-item]
    ).resolve()
    assert [t.name for t in cfg.topics] == ["a"]


def test_event_tags_from_strings_and_mappings_are_normalised() -> None:
    yaml_text = """
event_tags:
  - Emotion
  - name: Travel Plan
    description: where the user is going
"""
    cfg = ProfileConfig.from_yaml(yaml_text).resolve()
    assert [(t.name, t.description) for t in cfg.event_tags] == [
        ("emotion", ""),
        ("travel_plan", "where the user is going"),
    ]
    assert cfg.event_tag_names() == {"emotion", "travel_plan"}


def test_validate_mode_theme_and_system_prompt() -> None:
    cfg = ProfileConfig.from_yaml(
        "profile_validate_mode: false\nevent_theme_requirement: Only travel.\n"
        "system_prompt: You are a travel agent.\n"
    ).resolve()
    assert cfg.validate_mode is False
    assert cfg.event_theme_requirement == "Only travel."
    assert cfg.system_prompt == "You are a travel agent."


def test_empty_yaml_gives_defaults() -> None:
    assert ProfileConfig.from_yaml("") == ProfileConfig()
    assert ProfileConfig.from_yaml("   \n") == ProfileConfig()
    assert ProfileConfig.from_yaml(None) == ProfileConfig()
    assert ProfileConfig.from_yaml("# just a comment\n") == ProfileConfig()


def test_yaml_round_trip() -> None:
    config = ProfileConfig.from_yaml(STRICT_YAML)
    text = config.to_yaml()
    assert ProfileConfig.from_yaml(text) == config
    assert "- sports" in text  # bare sub-topic names stay bare
    assert ProfileConfig().to_yaml() == ""
    zh = ProfileConfig(language="zh", event_tags=["情绪"])  # type: ignore[list-item]
    assert ProfileConfig.from_yaml(zh.to_yaml()) == zh
    assert "情绪" in zh.to_yaml()


def test_coerce_accepts_the_usual_forms() -> None:
    config = ProfileConfig(language="zh")
    assert ProfileConfig.coerce(config) is config
    assert ProfileConfig.coerce("language: zh") == config
    assert ProfileConfig.coerce({"language": "zh"}) == config
    assert ProfileConfig.coerce(None) == ProfileConfig()
    with pytest.raises(ValidationError, match="YAML string or a dict"):
        ProfileConfig.coerce(42)  # type: ignore[arg-type]


def test_from_file(tmp_path: Path) -> None:
    path = tmp_path / "profile.yaml"
    path.write_text(STRICT_YAML, encoding="utf-8")
    assert ProfileConfig.from_file(path).resolve().strict_mode
    with pytest.raises(ConfigurationError, match="Cannot read the profile config file"):
        ProfileConfig.from_file(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("langauge: zh\n", "Did you mean 'language'?"),
        ("profile_strict_mod: true\n", "Did you mean 'profile_strict_mode'?"),
        ("event_tag: [mood]\n", "Did you mean 'event_tags'?"),
        ("enable_event_summary: true\n", "Known keys: language"),  # does nothing on a server
    ],
)
def test_unknown_top_level_keys_are_refused_with_the_closest_key(text: str, hint: str) -> None:
    # The server ignores an unknown key, so a typo would silently keep the default.
    with pytest.raises(ValidationError, match=re.escape(hint)):
        ProfileConfig.from_yaml(text)
    with pytest.raises(ValidationError, match="Unknown profile config key"):
        ProfileConfig.coerce(yaml.safe_load(text))


def test_a_stored_config_with_unknown_keys_still_loads_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        config = ProfileConfig.from_yaml(
            "language: zh\nenable_event_summary: true\n", unknown_keys="ignore"
        )
    assert config.language == "zh"
    assert "enable_event_summary" in caplog.text


# -- errors: each names the field and the fix ---------------------------------------------------


def test_yaml_syntax_error_names_the_line() -> None:
    # The exact input of the recorded server exchange set_profile_config_invalid_yaml.
    with pytest.raises(ValidationError) as info:
        ProfileConfig.from_yaml("event_tags: [unclosed")
    assert "line 1, column 22" in info.value.message
    assert "bracket" in info.value.message
    with pytest.raises(ValidationError, match="line 4, column 2"):  # the mis-indented " - b"
        ProfileConfig.from_yaml("language: en\nevent_tags:\n  - a\n - b\n")


def test_too_long() -> None:
    with pytest.raises(ValidationError, match=f"too long .*limit is {MAX_CONFIG_CHARS}"):
        ProfileConfig.from_yaml("#" * (MAX_CONFIG_CHARS + 1))


def test_root_must_be_a_mapping() -> None:
    with pytest.raises(ValidationError, match="must be a mapping"):
        ProfileConfig.from_yaml("- a\n- b\n")


@pytest.mark.parametrize(
    ("yaml_text", "where", "fix"),
    [
        # recorded as errno 500 (TypeError) by the server: we name the field instead
        (
            "overwrite_user_profiles:\n  - description: no topic key\n",
            "overwrite_user_profiles[0].topic",
            "Each item is {topic",
        ),
        (
            "overwrite_user_profiles:\n  - topic: a\n    sub_topics:\n      - name: x\n"
            "        description: 3\n",
            "overwrite_user_profiles[0].sub_topics[0].description",
            "valid string",
        ),
        ("profile_strict_mode: maybe\n", "profile_strict_mode", "true or false"),
        ("event_tags:\n  - description: nameless\n", "event_tags[0].name", "{name: str"),
        ("additional_user_profiles: {topic: a}\n", "additional_user_profiles", "Each item"),
        ("event_tags:\n  - name: '  '\n", "event_tags[0].name", "empty"),
    ],
)
def test_shape_errors_name_the_field_and_the_fix(yaml_text: str, where: str, fix: str) -> None:
    with pytest.raises(ValidationError) as info:
        ProfileConfig.from_yaml(yaml_text)
    assert where in info.value.message
    assert fix in info.value.message


def test_unknown_key_inside_a_topic_is_an_error() -> None:
    with pytest.raises(ValidationError) as info:
        ProfileConfig.from_yaml("overwrite_user_profiles:\n  - topic: a\n    subtopics: [x]\n")
    message = info.value.message
    assert "'subtopics'" in message and "overwrite_user_profiles[0]" in message
    assert "topic, description, sub_topics" in message
    with pytest.raises(ValidationError, match="update_description"):
        ProfileConfig.from_yaml(
            "overwrite_user_profiles:\n  - topic: a\n    sub_topics:\n      - name: b\n"
            "        validate: true\n"
        )
    with pytest.raises(ValidationError, match=r"'colour' in profile config item event_tags\[0\]"):
        ProfileConfig.from_yaml("event_tags:\n  - name: mood\n    colour: blue\n")
    with pytest.raises(ValidationError, match=r"Allowed keys there: name, description\.$"):
        ProfileConfig.from_yaml("event_tags:\n  - name: mood\n    colour: blue\n")
