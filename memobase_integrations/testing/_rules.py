"""The stand-in LLM's "understanding": regular expressions over self-statements.

:func:`recognize` reads one utterance (a user's chat message, or a memo line the stand-in wrote
itself, which it first turns back into the first person) and returns :class:`Statement` objects:
what kind of fact it is, its value, the third-person log sentence, and the profile slot(s) it
fills. Everything is deterministic. The recognised statements and their slots are listed in
the package docstring (:mod:`memobase_integrations.testing`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from ._dates import NUMBER_WORDS, find_when

__all__ = ["SLOTS", "Statement", "recognize", "slot_for", "to_first_person"]

Marker = Literal["info", "event", "schedule"]
Lang = Literal["en", "zh"]


@dataclass(frozen=True, slots=True)
class Statement:
    """One recognised fact. ``slots`` are (kind, value) pairs resolved by :func:`slot_for`."""

    sentence: str
    marker: Marker
    slots: tuple[tuple[str, str], ...]
    when: str | None = None
    label: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


#: kind -> (topic, sub_topic) per language. ``interest:<category>`` kinds use the category.
SLOTS: dict[Lang, dict[str, tuple[str, str]]] = {
    "en": {
        "name": ("basic_info", "name"),
        "age": ("basic_info", "age"),
        "birth_date": ("basic_info", "birth_date"),
        "nationality": ("basic_info", "nationality"),
        "hometown": ("basic_info", "hometown"),
        "language": ("basic_info", "language_spoken"),
        "city": ("contact_info", "city"),
        "relocation": ("life_event", "relocation"),
        "title": ("work", "title"),
        "company": ("work", "company"),
        "marital_status": ("demographics", "marital_status"),
        "spouse": ("demographics", "spouse"),
        "children": ("demographics", "children"),
        "number_of_children": ("demographics", "number_of_children"),
        "pets": ("demographics", "pets"),
        "marriage": ("life_event", "marriage"),
        "travel": ("life_event", "travel"),
        "plans": ("life_event", "plans"),
        "school": ("education", "school"),
        "major": ("education", "major"),
        "degree": ("education", "degree"),
        "goals": ("psychological", "goals"),
        "interest:books": ("interest", "books"),
        "interest:movies": ("interest", "movies"),
        "interest:music": ("interest", "music"),
        "interest:foods": ("interest", "foods"),
        "interest:sports": ("interest", "sports"),
        "interest:hobbies": ("interest", "hobbies"),
    },
    "zh": {
        "name": ("基本信息", "姓名"),
        "age": ("基本信息", "年龄"),
        "birth_date": ("基本信息", "出生日期"),
        "nationality": ("基本信息", "国籍"),
        "hometown": ("基本信息", "家乡"),
        "language": ("基本信息", "使用语言"),
        "city": ("联系信息", "城市"),
        "relocation": ("人生大事", "搬迁"),
        "title": ("工作", "职位"),
        "company": ("工作", "公司"),
        "marital_status": ("人口统计", "婚姻状况"),
        "spouse": ("人口统计", "配偶"),
        "children": ("人口统计", "子女"),
        "number_of_children": ("人口统计", "子女数量"),
        "pets": ("生活方式", "宠物"),
        "marriage": ("人生大事", "婚姻"),
        "travel": ("人生大事", "旅行"),
        "plans": ("人生大事", "计划"),
        "school": ("教育背景", "学校"),
        "major": ("教育背景", "专业"),
        "degree": ("教育背景", "学历"),
        "goals": ("心理特征", "目标"),
        "interest:books": ("兴趣爱好", "书籍"),
        "interest:movies": ("兴趣爱好", "电影"),
        "interest:music": ("兴趣爱好", "音乐"),
        "interest:foods": ("兴趣爱好", "美食"),
        "interest:sports": ("兴趣爱好", "运动"),
        "interest:hobbies": ("兴趣爱好", "爱好"),
    },
}

#: Slots holding one value: a different new value replaces the old one (merge UPDATE).
SINGLE_VALUED = frozenset(
    {
        "name",
        "age",
        "birth_date",
        "nationality",
        "hometown",
        "city",
        "title",
        "company",
        "marital_status",
        "number_of_children",
        "school",
        "major",
        "degree",
    }
)


def slot_for(kind: str, lang: Lang) -> tuple[str, str]:
    slot = SLOTS[lang].get(kind)
    if slot is None and kind.startswith("interest:"):  # a sub-topic named by the user
        return (SLOTS[lang]["interest:hobbies"][0], kind.split(":", 1)[1])
    return SLOTS[lang][kind] if slot is None else slot


def single_valued_slots(lang: Lang) -> frozenset[tuple[str, str]]:
    return frozenset(SLOTS[lang][k] for k in SINGLE_VALUED)


# -- phrase helpers ----------------------------------------------------------------------------

_CLAUSE_END = re.compile(
    r"\s*(?:[.!?;]|,\s*(?:but|and|so|because|since|which|who|though)\b|"
    r"\s+(?:but|because|since|so that|which|although|though|when|while)\b)",
    re.IGNORECASE,
)
_FILLER = re.compile(
    r"(?:\s+(?:too|a lot|so much|very much|as well|lately|these days|nowadays|now|"
    r"really|actually))+\s*$",
    re.IGNORECASE,
)
_CONNECT = frozenset({"of", "de", "la", "le", "&", "and", "the", "von", "van", "der", "du", "y"})
_PRONOUNS = frozenset(
    {
        "it",
        "that",
        "this",
        "you",
        "them",
        "those",
        "these",
        "him",
        "her",
        "me",
        "myself",
        "everything",
        "anything",
        "something",
        "nothing",
        "one",
    }
)
_NOT_NAMES = frozenset(
    {
        "sorry",
        "fine",
        "good",
        "great",
        "okay",
        "ok",
        "happy",
        "glad",
        "sure",
        "here",
        "back",
        "not",
        "so",
        "just",
        "also",
        "really",
        "very",
        "tired",
        "excited",
        "going",
        "looking",
        "trying",
        "thinking",
        "still",
        "new",
        "currently",
        "always",
        "now",
        "done",
        "ready",
        "busy",
        "home",
        "well",
        "afraid",
        "curious",
        "interested",
        "working",
        "planning",
        "learning",
        "moving",
        "married",
        "single",
        "divorced",
        "engaged",
        "from",
        "in",
        "at",
        "on",
        "the",
        "a",
        "an",
        "based",
        "living",
        "studying",
        "into",
        "retired",
        "english",
    }
)
_NATIONALITIES = frozenset(
    {
        "american",
        "british",
        "canadian",
        "chinese",
        "french",
        "german",
        "indian",
        "italian",
        "japanese",
        "korean",
        "mexican",
        "spanish",
        "brazilian",
        "australian",
        "dutch",
        "swedish",
        "norwegian",
        "polish",
        "portuguese",
        "russian",
        "irish",
        "scottish",
        "turkish",
        "greek",
        "egyptian",
        "nigerian",
        "kenyan",
        "argentinian",
        "colombian",
        "vietnamese",
        "thai",
        "filipino",
        "indonesian",
        "swiss",
        "austrian",
        "belgian",
        "danish",
        "finnish",
        "ukrainian",
    }
)
_JOB_NOUNS = frozenset(
    [
        "engineer",
        "developer",
        "programmer",
        "designer",
        "teacher",
        "nurse",
        "doctor",
        "physician",
        "surgeon",
        "manager",
        "lawyer",
        "attorney",
        "scientist",
        "analyst",
        "writer",
        "author",
        "student",
        "chef",
        "cook",
        "baker",
        "artist",
        "painter",
        "accountant",
        "consultant",
        "architect",
        "researcher",
        "professor",
        "lecturer",
        "pilot",
        "dentist",
        "pharmacist",
        "photographer",
        "musician",
        "librarian",
        "electrician",
        "plumber",
        "firefighter",
        "officer",
        "mechanic",
        "journalist",
        "editor",
        "founder",
        "ceo",
        "cto",
        "cfo",
        "director",
        "intern",
        "assistant",
        "administrator",
        "technician",
        "therapist",
        "psychologist",
        "veterinarian",
        "vet",
        "farmer",
        "carpenter",
        "salesperson",
        "marketer",
        "recruiter",
        "translator",
        "actor",
        "actress",
        "dancer",
        "singer",
        "producer",
        "entrepreneur",
        "economist",
        "statistician",
        "mathematician",
        "physicist",
        "chemist",
        "biologist",
        "paramedic",
        "barista",
        "waiter",
        "waitress",
        "cashier",
        "driver",
        "clerk",
        "secretary",
        "tutor",
        "coach",
        "trainer",
        "investor",
        "banker",
        "trader",
        "broker",
        "agent",
        "realtor",
        "scrum",
        "specialist",
        "strategist",
        "lead",
        "principal",
        "executive",
        "president",
        "owner",
    ]
)
_NUMBER_WORDS = {word: n for word, n in NUMBER_WORDS.items() if " " not in word}

#: Keyword -> interest category (the first match in the value wins).
_CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "books",
        (
            "book",
            "novel",
            "reading",
            "read",
            "author",
            "fiction",
            "poetry",
            "literature",
            "manga",
            "comic",
        ),
    ),
    (
        "movies",
        (
            "movie",
            "film",
            "cinema",
            "series",
            "tv",
            "show",
            "documentar",
            "anime",
            "netflix",
            "sitcom",
        ),
    ),
    (
        "music",
        (
            "music",
            "jazz",
            "rock",
            "song",
            "band",
            "guitar",
            "piano",
            "violin",
            "singing",
            "concert",
            "pop",
            "classical",
            "hip hop",
            "rap",
            "album",
            "opera",
            "drum",
        ),
    ),
    (
        "foods",
        (
            "food",
            "eat",
            "pizza",
            "sushi",
            "pasta",
            "coffee",
            "tea",
            "chocolate",
            "cuisine",
            "ramen",
            "taco",
            "burger",
            "cheese",
            "wine",
            "beer",
            "dish",
            "noodle",
            "curry",
            "bbq",
            "barbecue",
            "dessert",
            "ice cream",
            "cilantro",
            "spicy",
            "vegan",
            "vegetarian",
            "restaurant",
            "fruit",
            "steak",
            "salad",
            "bread",
            "cake",
        ),
    ),
    (
        "sports",
        (
            "hiking",
            "hike",
            "running",
            "run",
            "soccer",
            "football",
            "tennis",
            "basketball",
            "swimming",
            "swim",
            "cycling",
            "bike",
            "biking",
            "yoga",
            "climbing",
            "skiing",
            "ski",
            "surfing",
            "golf",
            "gym",
            "baseball",
            "volleyball",
            "boxing",
            "martial art",
            "jogging",
            "marathon",
            "workout",
            "sport",
            "badminton",
            "cricket",
            "rugby",
            "hockey",
            "skating",
            "snowboard",
            "rowing",
            "fitness",
            "pilates",
        ),
    ),
)
_ZH_CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("books", ("书", "小说", "阅读", "看书", "读书", "漫画")),
    ("movies", ("电影", "电视剧", "剧", "动漫", "纪录片")),
    ("music", ("音乐", "歌", "吉他", "钢琴", "爵士", "摇滚", "演唱会")),
    ("foods", ("吃", "美食", "火锅", "咖啡", "茶", "面", "菜", "寿司", "甜点")),
    (
        "sports",
        (
            "跑步",
            "游泳",
            "爬山",
            "徒步",
            "篮球",
            "足球",
            "网球",
            "瑜伽",
            "健身",
            "骑行",
            "羽毛球",
            "滑雪",
            "运动",
        ),
    ),
)


def category_of(value: str) -> str:
    """Which interest sub-topic a liked/disliked thing belongs to (``hobbies`` by default)."""
    lower = value.lower()
    for category, keywords in _CATEGORIES:
        for keyword in keywords:
            if re.search(rf"\b{re.escape(keyword)}", lower):
                return category
    for category, keywords in _ZH_CATEGORIES:
        if any(k in value for k in keywords):
            return category
    return "hobbies"


def _is_hobby_word(noun: str) -> bool:
    """True when ``noun`` names a hobby itself (so ``hobbies`` is the right sub-topic)."""
    return noun in ("hobby", "hobbies", "pastime", "activity", "thing to do")


def _phrase(text: str, max_words: int = 12) -> str:
    """The rest of a clause, trimmed of fillers; at most ``max_words`` words."""
    match = _CLAUSE_END.search(text)
    value = text[: match.start()] if match else text
    value = _FILLER.sub("", value.strip()).strip(" ,:;-\"'")
    words = value.split()
    return " ".join(words[:max_words])


# Short words that end in a dot without ending the sentence ("St. Louis", "J. R. R. Tolkien").
_ABBREVIATIONS = frozenset({"st", "mt", "ft", "dr", "mr", "mrs", "ms", "jr", "sr", "co", "inc"})


def _is_abbreviation(raw: str, nxt: str) -> bool:
    """True for "St." before "Louis"; false for "Gus." before "I work..." (a sentence end)."""
    word = raw.rstrip(".")
    if not raw.endswith(".") or not nxt[:1].isupper() or nxt in _PRONOUN_I:
        return False
    return len(word) == 1 or word.lower() in _ABBREVIATIONS


_PRONOUN_I = frozenset({"I", "I'm", "I've", "I'll", "I'd"})


def _proper(text: str, max_words: int = 5) -> str | None:
    """Leading capitalised words ("New York City", "Bank of America", "the Bay Area")."""
    words = text.split()
    out: list[str] = []
    for i, raw in enumerate(words):
        word = raw.strip(',.!?;:"()')
        nxt = words[i + 1].strip(',.!?;:"()') if i + 1 < len(words) else ""
        if word and (word[0].isupper() or (word[0].isdigit() and out)):
            out.append(raw.rstrip(',!?;:"()') if _is_abbreviation(raw, nxt) else word)
        elif word.lower() in _CONNECT and nxt[:1].isupper() and (out or word.lower() == "the"):
            out.append(word)
        else:
            break
        abbreviation = _is_abbreviation(raw, nxt)
        if (raw != word and raw[-1:] in ",.!?;:" and not abbreviation) or len(out) >= max_words:
            break
    if not out or all(w.lower() in _CONNECT for w in out):
        return None
    return " ".join(out)


def _name(text: str) -> str | None:
    name = _proper(text, max_words=3)
    if name is None:
        return None
    first = name.split()[0].lower()
    if first in _NOT_NAMES or first in _NATIONALITIES or first in _PRONOUNS:
        return None
    return name


def _article(text: str) -> str:
    return re.sub(r"^(?:a|an|the)\s+", "", text.strip(), flags=re.IGNORECASE)


def _count(word: str) -> int | None:
    word = word.lower()
    if word.isdigit():
        return int(word)
    return _NUMBER_WORDS.get(word)


def _org(text: str) -> str | None:
    """An employer or school: capitalised words, else a short generic phrase."""
    proper = _proper(text)
    if proper:
        return proper
    value = re.split(
        r"\s+(?:in|as|since|for|on|with|where|and|but|because|from|near)\b|[,.!?;]", text
    )[0].strip()
    words = value.split()
    if not words or len(words) > 5 or words[0].lower() in _PRONOUNS | {"home", "work"}:
        return None
    return value


# -- turning our own memo lines back into first-person statements ------------------------------

_VERBS = {
    "is": "am",
    "has": "have",
    "was": "was",
    "works": "work",
    "lives": "live",
    "loves": "love",
    "likes": "like",
    "enjoys": "enjoy",
    "adores": "adore",
    "hates": "hate",
    "dislikes": "dislike",
    "speaks": "speak",
    "plays": "play",
    "studies": "study",
    "owns": "own",
    "wants": "want",
    "plans": "plan",
    "prefers": "prefer",
    "moved": "moved",
    "relocated": "relocated",
    "got": "got",
    "started": "started",
    "joined": "joined",
    "graduated": "graduated",
    "turned": "turned",
    "will": "will",
    "just": "just",
    "recently": "recently",
}


def to_first_person(sentence: str) -> str:
    """ "User's name is Gus." -> "My name is Gus."; "User lives in X" -> "I live in X"."""
    text = sentence.strip()
    text = re.sub(r"^(?:the\s+)?user's\s+", "My ", text, flags=re.IGNORECASE)
    match = re.match(r"^(?:the\s+)?user\s+(\w+)\b", text, flags=re.IGNORECASE)
    if match and match.group(1).lower() in _VERBS:
        text = f"I {_VERBS[match.group(1).lower()]}{text[match.end() :]}"
    text = re.sub(r"^用户(?!们)", "我", text)
    return text


# -- recognition -------------------------------------------------------------------------------

_I_AM = r"I(?:'m|\s+am)"
_ADV = r"(?:(?:really|absolutely|also|just|totally|truly|genuinely|do|still|kind of|kinda)\s+)*"


def _split_clauses(text: str) -> list[str]:
    text = text.replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')
    # Sentence ends, but not after "St." / "Dr." / "J." (an abbreviation, see _ABBREVIATIONS).
    parts: list[str] = []
    for piece in re.split(r"(?<=[.!?;])\s+|\n+|[。！？；]", text):
        last = parts[-1].split()[-1] if parts and parts[-1].split() else ""
        if last and _is_abbreviation(last, piece.split()[0] if piece.split() else ""):
            parts[-1] = f"{parts[-1]} {piece}"
        else:
            parts.append(piece)
    out: list[str] = []
    for part in parts:
        out.extend(
            re.split(
                r",?\s+(?:and|but|so|also)\s+(?=(?:I|I'm|I've|I'll|my|My)\b)|,\s+(?=(?:I|I'm|my|My)\b)",
                part,
            )
        )
    return [c.strip() for c in out if c and c.strip()]


def recognize(text: str, today: date | None) -> list[Statement]:
    """All statements in ``text`` (a message or one memo line), in order of appearance."""
    found: list[Statement] = []
    for clause in _split_clauses(text):
        if re.search(r"[\u4e00-\u9fff]", clause):
            found.extend(_recognize_zh(clause, today))
        else:
            found.extend(_recognize_en(to_first_person(clause), today))
    return found


def _recognize_en(clause: str, today: date | None) -> Iterable[Statement]:
    c = clause.strip()
    if re.match(r"^(?:do|does|did|can|could|would|will|are|is|what|how|why|where)\b", c, re.I):
        return  # questions reveal nothing about the user
    if re.search(r"\b(?:not|n't|never|no longer)\b", c, re.I) and not re.search(
        r"\b(?:can't stand|cannot stand|don't like|do not like)\b", c, re.I
    ):
        return

    # name
    m = re.search(r"\bmy\s+name(?:'s|\s+is)\s+(.+)", c, re.I) or re.search(
        r"\b(?:call\s+me|you\s+can\s+call\s+me|name's)\s+(.+)", c, re.I
    )
    if m:
        name = _proper(m.group(1), 3) or _phrase(m.group(1), 3).title()
        if name and name.split()[0].lower() not in _PRONOUNS:
            yield Statement(f"User's name is {name}.", "info", (("name", name),))
    else:
        m = re.search(rf"\b{_I_AM}\s+(.+)", c)
        if m and not re.match(r"\d", m.group(1)):
            maybe = _name(m.group(1))
            if maybe and not re.match(rf"{re.escape(maybe)}\s+(?:years?|y/?o)\b", m.group(1)):
                yield Statement(f"User's name is {maybe}.", "info", (("name", maybe),))
            word = m.group(1).split()[0].strip(",.!") if m.group(1).split() else ""
            if word.lower() in _NATIONALITIES:
                yield Statement(f"User is {word}.", "info", (("nationality", word),))

    # age
    m = re.search(
        rf"\b(?:{_I_AM}\s+(\d{{1,3}})(?=\s*(?:years?\s+old|y/?o\b|[.,!]|$))|"
        r"I\s+(?:just\s+)?turned\s+(\d{1,3})\b|my\s+age\s+is\s+(\d{1,3}))",
        c,
        re.I,
    )
    if m:
        age = next(g for g in m.groups() if g)
        if 0 < int(age) < 125:
            yield Statement(f"User is {age} years old.", "info", (("age", age),))

    # birth date
    m = re.search(r"\bI\s+was\s+born\s+(?:on|in)\s+(.+)", c, re.I) or re.search(
        r"\bmy\s+birthday\s+is\s+(?:on\s+)?(.+)", c, re.I
    )
    if m:
        when, _ = find_when(m.group(1), None)
        value = when or _phrase(m.group(1), 4)
        if value:
            yield Statement(f"User was born on {value}.", "info", (("birth_date", value),))

    # where they live / come from / moved to
    m = re.search(
        rf"\b(?:I\s+(?:currently\s+|now\s+|still\s+)?(?:live|reside|stay)\s+in|{_I_AM}\s+(?:based|living)\s+in)\s+(.+)",
        c,
        re.I,
    )
    if m and (city := _proper(m.group(1))):
        yield Statement(f"User lives in {city}.", "info", (("city", city),))
    m = re.search(rf"\b{_I_AM}\s+(?:originally\s+)?from\s+(.+)", c, re.I)
    if m and (place := _proper(m.group(1))):
        yield Statement(f"User is from {place}.", "info", (("hometown", place),))
    m = re.search(r"\bI\s+(?:just\s+|recently\s+|have\s+)?(?:moved|relocated)\s+to\s+(.+)", c, re.I)
    if m:
        when, rest = find_when(m.group(1), today)
        if city := _proper(rest):
            yield Statement(
                f"User moved to {city}.",
                "event",
                (("city", city), ("relocation", f"moved to {city}")),
                when=when,
                label="moved",
            )

    # work
    title = company = None
    event = False
    m = re.search(
        rf"\b{_I_AM}\s+(?:now\s+|currently\s+)?(?:a|an)\s+(.+?)\s+(?:at|for|with)\s+(.+)", c, re.I
    )
    if m and len(m.group(1).split()) <= 5:
        title, company = _article(m.group(1)), _org(m.group(2))
    m = re.search(
        rf"\b(?:I\s+(?:now\s+|currently\s+)?work(?:ing)?\s+as|{_I_AM}\s+(?:now\s+)?working\s+as|"
        r"my\s+(?:job|job\s+title|title|role|position)\s+is|I\s+(?:just\s+)?became|"
        r"I\s+(?:was|got|have\s+been)\s+promoted\s+to|I\s+(?:just\s+)?(?:got|started|took)\s+"
        r"(?:a\s+)?(?:new\s+)?(?:job|position|role)\s+as)\s+(.+)",
        c,
        re.I,
    )
    if m:
        event = bool(re.search(r"became|promoted|got|started|took", m.group(0), re.I))
        _, undated = find_when(m.group(1), None)
        value = re.split(r"\s+(?:at|for|with|in|since)\s+|[,.!?;]", undated)[0]
        title = _article(_phrase(value, 6))
        after = re.search(r"\s+(?:at|for|with)\s+(.+)", m.group(1))
        if after and not company:
            company = _org(after.group(1))
    m = re.search(
        r"\bI\s+(?:now\s+|currently\s+|still\s+)?(?:work|am\s+working|'m\s+working)\s+(?:at|for)\s+(.+)|"
        r"\bI\s+(?:just\s+|recently\s+)?(?:joined|started\s+(?:working\s+)?at|got\s+a\s+job\s+at)\s+(.+)",
        c,
        re.I,
    )
    if m:
        company = _org(m.group(1) or m.group(2)) or company
        event = event or bool(m.group(2))
        role = re.search(r"\bas\s+(?:a|an)?\s*(.+)", m.group(1) or m.group(2), re.I)
        if role and not title:
            title = _article(_phrase(role.group(1), 6))
    if title is None and not company:
        m = re.search(rf"\b{_I_AM}\s+(?:now\s+)?(?:a|an)\s+(.+)", c, re.I)
        if m:
            candidate = _phrase(m.group(1), 5)
            last = candidate.split()[-1].lower().rstrip("s") if candidate else ""
            if last in _JOB_NOUNS:
                title = candidate
    if title and title.split()[-1].lower().rstrip("s") in _PRONOUNS:
        title = None
    if title or company:
        when, _ = find_when(c, today) if event else (None, c)
        slots: list[tuple[str, str]] = []
        if title:
            slots.append(("title", title))
        if company:
            slots.append(("company", company))
        if title and company:
            sentence = f"User works as {title} at {company}."
        elif title:
            sentence = f"User works as {title}."
        else:
            sentence = f"User works at {company}."
        yield Statement(sentence, "event" if event else "info", tuple(slots), when=when)

    # likes and dislikes
    m = re.search(rf"\bI\s+{_ADV}(love|like|enjoy|adore)\s+(.+)", c, re.I) or re.search(
        rf"\b{_I_AM}\s+(?:really\s+)?(?:into|a\s+(?:big\s+|huge\s+)?fan\s+of)\s+(.+)", c, re.I
    )
    if m and not re.search(r"\bI\s*(?:'d|would)\s+like\b", c, re.I):
        verb = m.group(1).lower() if m.lastindex == 2 else "enjoy"
        value = _phrase(m.group(m.lastindex or 1))
        value = re.sub(r"^to\s+", "", value)
        if value and value.split()[0].lower() not in _PRONOUNS | {"your", "how", "what", "when"}:
            kind = f"interest:{category_of(value)}"
            verb3 = {"love": "loves", "like": "likes", "adore": "adores"}.get(verb, "enjoys")
            yield Statement(f"User {verb3} {value}.", "info", ((kind, value),))
    m = re.search(
        r"\bmy\s+(?:favou?rite)\s+(\w+(?:\s+\w+)?)\s+(?:is|are)\s+(.+)", c, re.I
    ) or re.search(r"\bmy\s+(hobby|hobbies|passion)\s+(?:is|are|include)\s+(.+)", c, re.I)
    if m:
        value = _phrase(m.group(2))
        if value:
            noun = m.group(1).lower()
            if noun in ("hobby", "hobbies", "passion"):
                category = category_of(value)
            else:
                # The thing named decides the slot ("favourite food" -> foods); a thing no
                # category knows gets its own sub-topic ("favourite colour" -> colour), as a
                # model would, rather than a guess from the value ("teal" is not "tea").
                category = category_of(noun)
                if category == "hobbies" and not _is_hobby_word(noun):
                    category = re.sub(r"\W+", "_", noun).strip("_")
            yield Statement(
                f"User's favorite {m.group(1).lower()} is {value}.",
                "info",
                ((f"interest:{category}", value),),
            )
    m = re.search(
        rf"\bI\s+{_ADV}(hate|dislike|detest|can't\s+stand|cannot\s+stand|don't\s+like|do\s+not\s+like)\s+(.+)",
        c,
        re.I,
    )
    if m:
        value = _phrase(m.group(2))
        if value and value.split()[0].lower() not in _PRONOUNS:
            kind = f"interest:{category_of(value)}"
            yield Statement(f"User dislikes {value}.", "info", ((kind, f"dislikes {value}"),))

    # family
    m = re.search(
        r"\bmy\s+(wife|husband|partner|girlfriend|boyfriend|fianc[eé]e?|spouse)"
        r"(?:'s\s+name\s+is|\s+is\s+(?:named|called)|\s+is|,)?\s+(.+)",
        c,
        re.I,
    )
    if m and (who := _name(m.group(2))):
        relation = m.group(1).lower()
        status = "married" if relation in ("wife", "husband", "spouse") else "in a relationship"
        if relation.startswith("fianc"):
            status = "engaged"
        yield Statement(
            f"User's {relation} is named {who}.",
            "info",
            (("marital_status", status), ("spouse", f"{relation} {who}")),
        )
    for m in re.finditer(
        r"\b(?i:my)\s+(?i:(daughter|son|kid|child|baby))(?i:'s\s+name\s+is|\s+is\s+(?:named|called)|,)?\s+"
        r"([A-Z][\w'-]+)",
        c,
    ):
        if (who := _name(m.group(2))) is not None:
            relation = m.group(1).lower()
            yield Statement(
                f"User's {relation} is named {who}.", "info", (("children", f"{relation} {who}"),)
            )
    m = re.search(
        r"\bI\s+have\s+(a|an|one|two|three|four|five|six|seven|\d+)\s+(kids?|children|child|sons?|daughters?)\b",
        c,
        re.I,
    )
    if m and (n := _count(m.group(1))) is not None:
        noun = m.group(2).lower()
        noun = noun if n == 1 else {"kid": "kids", "child": "children"}.get(noun, noun)
        yield Statement(f"User has {n} {noun}.", "info", (("number_of_children", str(n)),))
    m = re.search(rf"\b{_I_AM}\s+(married|single|divorced|engaged|widowed)\b", c, re.I)
    if m:
        status = m.group(1).lower()
        yield Statement(f"User is {status}.", "info", (("marital_status", status),))
    m = re.search(r"\bI\s+(?:just\s+)?got\s+(married|engaged|divorced)\b(.*)", c, re.I)
    if m:
        status = m.group(1).lower()
        when, _ = find_when(m.group(2), today)
        yield Statement(
            f"User got {status}.",
            "event",
            (("marital_status", status), ("marriage", f"got {status}")),
            when=when,
            label=f"got {status}",
        )

    # pets
    m = re.search(
        r"\b(?i:my)\s+(?i:(dog|cat|puppy|kitten|parrot|rabbit|bunny|hamster|horse|bird|turtle|fish))"
        r"(?i:'s\s+name\s+is|\s+is\s+(?:named|called)|,)?\s+([A-Z][\w'-]+)",
        c,
    ) or re.search(
        r"\bI\s+have\s+(?:a|an|one)\s+(dog|cat|puppy|kitten|parrot|rabbit|bunny|hamster|horse|bird|turtle|fish)"
        r"\s+(?:named|called)\s+([A-Z][\w'-]+)",
        c,
        re.I,
    )
    if m:
        animal, pet = m.group(1).lower(), m.group(2)
        yield Statement(f"User has a {animal} named {pet}.", "info", (("pets", f"{animal} {pet}"),))
    else:
        m = re.search(
            r"\bI\s+have\s+(a|an|one|two|three|\d+)\s+(dogs?|cats?|puppies|puppy|kittens?|parrots?|rabbits?|hamsters?|horses?|birds?|turtles?)\b",
            c,
            re.I,
        )
        if m:
            yield Statement(
                f"User has {m.group(1).lower()} {m.group(2).lower()}.",
                "info",
                (("pets", f"{m.group(1).lower()} {m.group(2).lower()}"),),
            )

    # languages
    m = re.search(
        rf"\bI\s+(?:can\s+)?speak\s+(.+)|{_I_AM}\s+fluent\s+in\s+(.+)|my\s+(?:native|first|mother)\s+(?:language|tongue)\s+is\s+(.+)",
        c,
        re.I,
    )
    if m:
        value = _phrase(next(g for g in m.groups() if g), 8)
        if value and value[0].isupper():
            yield Statement(f"User speaks {value}.", "info", (("language", value),))

    # education
    m = re.search(
        rf"\b(?:I\s+(?:study|studied|major(?:ed)?\s+in)|{_I_AM}\s+(?:studying|majoring\s+in))\s+(.+?)(?:\s+at\s+(.+))?$",
        c,
        re.I,
    )
    if m:
        major = _phrase(m.group(1), 5)
        school = _org(m.group(2)) if m.group(2) else None
        slots = [("major", major)] if major else []
        if school:
            slots.append(("school", school))
        if slots:
            where = f" at {school}" if school else ""
            yield Statement(f"User studies {major}{where}.", "info", tuple(slots))
    m = re.search(rf"\b(?:I\s+graduated\s+from|{_I_AM}\s+a\s+student\s+at)\s+(.+)", c, re.I)
    if m and (school := _org(m.group(1))):
        yield Statement(f"User studied at {school}.", "info", (("school", school),))

    # goals
    m = re.search(rf"\b{_I_AM}\s+(?:currently\s+)?learning\s+(.+)", c, re.I) or re.search(
        r"\bmy\s+goal\s+is\s+to\s+(.+)|\bI\s+(?:really\s+)?want\s+to\s+(.+)", c, re.I
    )
    if m:
        raw = next(g for g in m.groups() if g)
        learning = "learning" in m.group(0).lower()
        when, rest = find_when(raw, today)
        value = _phrase(rest, 8)
        if value and value.split()[0].lower() not in _PRONOUNS | {"know", "ask", "say"}:
            goal = f"learning {value}" if learning else value
            verb = "is learning" if learning else "wants to"
            yield Statement(f"User {verb} {value}.", "info", (("goals", goal),), when=when)

    # plans with dates
    m = re.search(
        rf"\b(?:{_I_AM}\s+(?:going|planning|flying|travel(?:l)?ing|heading|driving)\s+(?:to\s+)?|"
        rf"{_I_AM}\s+(?:visiting|attending|starting|taking)\s+|I\s+(?:will|'ll|plan\s+to|am\s+going\s+to)\s+)(.+)",
        c,
        re.I,
    )
    if m:
        when, rest = find_when(m.group(1), today)
        value = _phrase(rest, 10)
        place = _proper(value)
        explicit = re.search(r"\bplan(?:ning)?\s+to\b", m.group(0), re.I) is not None
        if value and (when or place or explicit) and value.split()[0].lower() not in _PRONOUNS:
            if place and value.startswith(place):
                label = f"trip to {place}"
                yield Statement(
                    f"User is going to {place}.",
                    "schedule",
                    (("travel", label),),
                    when=when,
                    label="trip",
                )
            else:
                yield Statement(
                    f"User plans to {value}.",
                    "schedule",
                    (("plans", value),),
                    when=when,
                    label="plan",
                )
    m = re.search(
        r"\bI\s+(?:have|'ve\s+got|got)\s+(?:a|an|my)\s+(.+?(?:appointment|interview|exam|meeting|"
        r"party|wedding|flight|trip|concert|surgery|checkup|check-up|date|game|match|deadline|"
        r"presentation|conference))\b(.*)",
        c,
        re.I,
    )
    if m:
        when, _ = find_when(m.group(2) or c, today)
        value = _phrase(m.group(1), 6)
        if value:
            yield Statement(
                f"User has a {value}.", "schedule", (("plans", value),), when=when, label=value
            )


def _recognize_zh(clause: str, today: date | None) -> Iterable[Statement]:
    """A small Chinese rule set: name, age, city, job, employer, likes."""
    c = to_first_person(clause.strip())
    if "不" in c or "没" in c:
        return
    m = re.search(r"我(?:的名字是|名叫|叫)([\u4e00-\u9fffA-Za-z]{1,6}?)(?:[，,。！!]|$|，)", c)
    if m:
        yield Statement(f"用户名叫{m.group(1)}。", "info", (("name", m.group(1)),))
    m = re.search(r"我(?:今年)?(\d{1,3})岁", c)
    if m:
        yield Statement(f"用户今年{m.group(1)}岁。", "info", (("age", m.group(1)),))
    m = re.search(r"我(?:现在)?(?:住在|生活在)([\u4e00-\u9fff]{2,6}?)(?:[，,。！!]|$)", c)
    if m:
        yield Statement(f"用户住在{m.group(1)}。", "info", (("city", m.group(1)),))
    m = re.search(r"我(?:刚)?搬到了?([\u4e00-\u9fff]{2,6}?)(?:[，,。！!]|$)", c)
    if m:
        yield Statement(
            f"用户搬到了{m.group(1)}。",
            "event",
            (("city", m.group(1)), ("relocation", f"搬到{m.group(1)}")),
            label="搬家",
        )
    m = re.search(r"我在([\u4e00-\u9fffA-Za-z]{2,12}?)(?:工作|上班)", c)
    if m:
        yield Statement(f"用户在{m.group(1)}工作。", "info", (("company", m.group(1)),))
    m = re.search(
        r"我是(?:一名|一个|一位)?([\u4e00-\u9fff]{2,8}?(?:师|员|生|家|经理|医生|老师|工程师))", c
    )
    if m:
        yield Statement(f"用户是{m.group(1)}。", "info", (("title", m.group(1)),))
    m = re.search(r"我(?:很|特别|非常)?(?:喜欢|爱)([\u4e00-\u9fffA-Za-z]{1,12})", c)
    if m:
        value = m.group(1)
        yield Statement(f"用户喜欢{value}。", "info", ((f"interest:{category_of(value)}", value),))
