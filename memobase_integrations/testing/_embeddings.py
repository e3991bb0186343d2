"""The stand-in's embeddings: words plus a small concept lexicon (deterministic, not a model).

Why not plain hashed words: vectors that only see the words lexical search sees can never
find what words miss, so hybrid search (lexical + vector) could not be exercised offline as
it behaves with a real embedding model. Real models place related words and paraphrases
near each other ("family in Portugal" near "sister lives in Lisbon"); this stand-in models
that, crudely and deterministically, with a hand-written lexicon of everyday concepts.

A text's vector is a bag of features, each hashed to a signed dimension of the requested
size (so any ``dimensions`` works, with collisions that only add noise):

* every word, analysed as search analyses it (``engine.search.analyze``: case folding,
  accents off, Snowball stems, CJK characters and pairs), minus the search stopwords and
  format words ("user", "mention"), with weight 1. A word hashes as the previous, words-only
  stand-in hashed it, so vectors stored by earlier versions still match on shared words;
* for each such word in :data:`LEXICON`, its concepts ("lisbon" -> ``portugal``, ``city``),
  each weighted ``1/sqrt(n)`` (a norm of 1 together): meaning and spelling count alike.

The vector is normalised, so cosine similarity is their dot product. Exact words still
count (a name shares its word feature only with texts naming it), but a vector, unlike BM25,
has no idea how rare a word is: a rare name weighs what a common word weighs. The lexicon
covers everyday personal-memory topics (Memobase's default profile topics: work, health,
family, interests, travel, places...). It was written by hand knowing the topics of the
tests' memories (the labelled search set among them), not their measurements, and nothing
in it was changed after measuring; it is no substitute for a model, and the search numbers
measured with it say how fusion behaves, not how good a real model is.
"""

from __future__ import annotations

import functools
import hashlib
import math
from typing import Final

from ..engine.search import FORMAT_WORDS, STOPWORDS, analyze

__all__ = ["LEXICON", "concepts_of", "embed_text"]

_LEXICON_TEXT: Final = """
animal: animal animals pet pets dog dogs puppy cat cats kitten bird parrot rabbit hamster
  horse fish beagle retriever labrador poodle terrier spaniel bulldog hound vet veterinarian
pet: pet pets dog dogs puppy cat cats kitten parrot rabbit hamster beagle retriever
  labrador poodle terrier spaniel bulldog vet veterinarian adopt adopted
dog: dog dogs puppy puppies beagle retriever labrador poodle terrier spaniel bulldog hound
  canine walkies
cat: cat cats kitten kittens feline
health: health healthy ill illness sick sickness disease diagnosed diagnosis doctor nurse
  hospital clinic surgery operation injury injured pain allergy allergies allergic medicine
  medication therapy therapist symptom symptoms treatment recovery recover dysplasia knee
  hip fever flu cancer dentist
medical_work: nurse nurses nursing doctor physician surgeon hospital clinic patient patients
  ward paramedic pharmacist
work: work works working job jobs career employer employee company office colleague
  colleagues boss manager promoted promotion shift shifts profession professional hired
  salary workplace business nurse engineer teacher developer
food: food foods eat eating ate meal meals dinner lunch breakfast cook cooking cooked bake
  baking baked bread recipe restaurant ramen sushi pasta pizza noodles soup rice cheese
  meat fish fruit vegetable vegetables peanut peanuts nut nuts snack dessert cake chocolate
  vegetarian vegan diet cuisine dish
diet: diet diets vegetarian vegan allergy allergic peanut peanuts gluten lactose calories
  nutrition meat dairy
drink: drink drinks coffee tea milk beer wine juice water latte espresso
cooking: cook cooks cooking cooked bake bakes baking baked bread sourdough recipe recipes
  oven kitchen chef cuisine
travel: travel travels travelling traveling trip trips journey vacation holiday holidays
  visit visiting flight flights fly flew booked abroad tourist tour passport hotel airport
  backpacking
outdoors: outdoors outdoor nature mountain mountains hike hikes hiking hiker trail trails
  climb climbed climbing alps dolomites glacier summit peak ski skiing camping camp
  campsite lake forest trek trekking
mountain: mountain mountains alps dolomites glacier summit peak alpine ski skiing climb
  climbing hike hiking
sport: sport sports run running runner race races marathon jog jogging gym training train
  fitness exercise workout swim swimming cycling football soccer tennis yoga ski skiing
  athlete
running: run runs running runner race races marathon half jog jogging sprint
music: music musical musician song songs sing singing singer band orchestra choir concert
  piano guitar violin cello drums instrument
reading: book books read reads reading reader novel novels author authors library story
  stories mystery fiction poetry literature
language: language languages japanese spanish french german english chinese italian
  portuguese duolingo fluent grammar vocabulary
learning: learn learns learning learned study studies studying student lesson lessons
  course courses class classes practice
education: education study studies studying student students school university college
  degree master masters phd course exam exams graduate graduated lecture thesis
family: family mother mom mum father dad parent parents sister brother sibling siblings
  daughter son child children kids grandmother grandfather aunt uncle cousin niece nephew
relationship: partner boyfriend girlfriend wife husband fiance fiancee engaged engagement
  propose proposed proposal wedding marry married marriage spouse dating romance
home: home house flat apartment rent mortgage renovate renovating renovation kitchen
  bathroom bedroom furniture neighbour neighbor garden
money: money save saving savings buy bought budget afford salary loan mortgage invest
  price cost expensive cheap pay paid
transport: car cars drive driving driver bike bikes bicycle cycle cycling commute bus
  train tram metro subway taxi scooter walk motorbike
stress: stress stressed anxious anxiety burnout burned exhausted tired overwhelmed
  depressed depression worried worry pressure
sleep: sleep sleeps sleeping slept insomnia tired rest nap bed
games: game games board chess puzzle puzzles cards videogames gaming
hobby: hobby hobbies leisure enjoy enjoys pastime fun play plays playing
weekday: monday mondays tuesday tuesdays wednesday wednesdays thursday thursdays friday
  fridays saturday saturdays sunday sundays weekend weekends weekly
winter: winter snow ski skiing christmas december january february cold
summer: summer beach sunny july august june
spring: spring april blossom
city: city cities town lisbon porto tokyo kyoto osaka berlin munich hamburg madrid
  barcelona valencia seville rome milan venice florence naples paris lyon london
  manchester york chicago beijing shanghai vienna amsterdam
japan: japan japanese tokyo kyoto osaka
portugal: portugal portuguese lisbon porto
germany: germany german berlin munich hamburg
spain: spain spanish madrid barcelona valencia seville
italy: italy italian rome milan venice florence naples dolomites garda
france: france french paris lyon
britain: britain british england english london manchester
usa: usa america american york chicago
china: china chinese beijing shanghai
europe: europe european portugal spain italy france germany britain austria alps
  dolomites lisbon porto madrid barcelona valencia rome milan berlin paris london vienna
"""


def _parse(text: str) -> dict[str, tuple[str, ...]]:
    by_word: dict[str, list[str]] = {}
    concept = ""
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            concept, _, line = line.partition(":")
        for term in analyze(line):
            found = by_word.setdefault(term, [])
            if concept not in found:
                found.append(concept)
    return {word: tuple(found) for word, found in by_word.items()}


#: Analysed word -> the concepts it evokes (stems: "hiking" and "hikes" are "hike").
LEXICON: Final = _parse(_LEXICON_TEXT)
_SKIP: Final = frozenset(analyze(" ".join(sorted(STOPWORDS)))) | FORMAT_WORDS


def concepts_of(word: str) -> tuple[str, ...]:
    """The concepts a word evokes (empty when the lexicon does not know it)."""
    terms = analyze(word)
    return LEXICON.get(terms[0], ()) if len(terms) == 1 else ()


@functools.lru_cache(maxsize=65536)
def _slot(feature: str, dimensions: int) -> tuple[int, float]:
    digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
    return int.from_bytes(digest[:4], "little") % dimensions, 1.0 if digest[4] & 1 else -1.0


def embed_text(text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector of ``dimensions``: words and their concepts (module doc)."""
    features: dict[str, float] = {}
    for term in analyze(text):
        if term in _SKIP:
            continue
        features[term] = features.get(term, 0.0) + 1.0
        concepts = LEXICON.get(term, ())
        for concept in concepts:
            key = f"concept:{concept}"
            features[key] = features.get(key, 0.0) + 1.0 / math.sqrt(len(concepts))
    vector = [0.0] * dimensions
    for feature, weight in features.items():
        index, sign = _slot(feature, dimensions)
        vector[index] += sign * weight
    norm = math.sqrt(math.fsum(v * v for v in vector))
    if norm == 0.0:
        vector[0] = 1.0
        return vector
    return [v / norm for v in vector]
