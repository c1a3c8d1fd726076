"""The embedded default corpus: generated review-like sentences, *not real reviews*.

Every review is built from templates, so ``--task sentiment`` runs with nothing
downloaded. The label is set by long-range structure, not by a bag of words:

1. An optional neutral opener ("i watched it last friday .").
2. **The cue sentence**, near the start: a sentiment word, possibly negated
   ("the movie was truly amazing .", "i did not enjoy the film .",
   "the plot was never dull ."). Its polarity, flipped by its negation, is the label.
3. **Filler**: 0 to 6 neutral sentences (about 10 tokens each) that say
   nothing about the verdict but reuse the cue's function words, negations
   included ("the film was not released in spain until 1999 ."), so neither
   "not" nor any single word outside the cue tells the label.
4. Sometimes (``p_closing``) a closing sentence that agrees with the label
   ("there was hardly any boring moment .").

Without memory only the reviews with a closing sentence or little filler can
be classified; the rest need the cue carried across the filler. The short
ones also give a learner its first, short-range signal about the cue words.

The seeds' example review ("Amazing movie! Movie was full of new surprises, ...
There was hardly any boring moment.") follows this grammar, so every word of it
is in the generated vocabulary.

Generation uses Python's :class:`random.Random` seeded from the run seed, so
the same seed gives the same corpus on every machine.
"""

from __future__ import annotations

import random
from typing import Callable

POSITIVE = ("amazing", "brilliant", "wonderful", "superb", "delightful", "excellent", "moving", "gripping",
            "charming", "fantastic", "stunning", "hilarious", "beautiful", "great", "good", "clever", "memorable")
NEGATIVE = ("boring", "awful", "dull", "terrible", "tedious", "clumsy", "bland", "lifeless", "predictable",
            "painful", "dreadful", "bad", "weak", "forgettable", "messy", "poor", "disappointing")
LOVE = ("loved", "enjoyed", "adored", "liked", "admired")          # i ___ the film  -> positive
HATE = ("hated", "disliked", "loathed", "despised", "resented")    # i ___ the film  -> negative
LOVE_BASE = ("love", "enjoy", "like", "admire")                    # i did not ___   -> negative
HATE_BASE = ("hate", "dislike", "mind", "regret")                  # i did not ___   -> positive
SUBJECTS = ("the movie", "this movie", "the film", "this film", "the story", "the plot", "the acting",
            "the script", "the ending", "the cast", "this picture", "the direction")
NOUNS = ("movie", "film", "story", "picture", "show", "thriller", "comedy", "drama")
INTENSIFIERS = ("", "", "", "really", "truly", "very", "quite", "so", "absolutely", "rather", "pretty")
NEGATORS = ("not", "never", "hardly", "in no way", "far from", "anything but")

ROLES = ("director", "writer", "composer", "lead actor", "producer", "cast", "crew", "narrator", "studio", "editor")
GROUPS = ("audience", "the audience", "critics", "the crowd", "fans", "we", "my friends", "the whole family")
PLACES = ("toronto", "spain", "a small town", "new york", "the desert", "a studio lot", "paris", "the mountains",
          "an old house", "london", "a train", "the suburbs")
THINGS = ("surprises", "faces", "songs", "locations", "characters", "twists", "costumes", "cameos", "scenes")
PEOPLE = ("a young teacher", "a schoolboy", "an old sailor", "a detective", "a family", "a nurse",
          "a young mother", "a retired boxer", "a journalist", "a lonely farmer")
ACTIONS = ("moves to a new city", "looks for a missing dog", "opens a small bakery", "travels across the country",
           "returns home after years", "tries to win a contest", "starts a new job", "inherits a house")
DAYS = ("monday", "tuesday", "friday", "saturday", "sunday", "weekend", "holiday")
COMPANIONS = ("my sister", "a friend", "my parents", "my kids", "a colleague", "my partner")
SCENES = ("chase", "wedding", "flashback", "trial", "dinner", "storm", "dance", "car ride", "phone call")
PARTS = ("middle", "first act", "second half", "last act", "opening", "final minutes")
YEARS = ("1987", "1994", "1999", "2003", "2008", "2012", "2016", "2021")
NUMBERS = ("ninety", "a hundred", "eighty", "two hours and ten", "a hundred and twenty")
SEEN = ("watch", "see", "review")
WAITS = ("hold back", "wait", "queue", "sit still")
CLOSING_STARTS = ("overall it was", "in the end it was", "all in all it was", "my verdict :")


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _with_article(phrase: str) -> str:
    return f"{_article(phrase)} {phrase}"


def _pick(rng: random.Random, options) -> str:
    return options[rng.randrange(len(options))]


def _words(*parts: str) -> str:
    return " ".join(p for p in parts if p)


# --------------------------------------------------------------- cue sentence

def _cue(rng: random.Random, label: int) -> str:
    """A sentence whose sentiment, after its own negation, is ``label`` (1 positive)."""
    negated = rng.random() < 0.4
    positive_word = bool(label) != negated   # a negated cue uses the opposite word
    adj = _pick(rng, POSITIVE if positive_word else NEGATIVE)
    kind = rng.randrange(5)
    if kind == 0:      # the movie was (not) truly amazing .
        neg = _pick(rng, NEGATORS) if negated else ""
        return _words(_pick(rng, SUBJECTS), "was", neg, _pick(rng, INTENSIFIERS), adj, _pick(rng, (".", "!")))
    if kind == 1:      # i loved the film . / i did not enjoy the film .
        if negated:
            verb = _pick(rng, HATE_BASE if positive_word else LOVE_BASE)
            return _words("i", _pick(rng, ("did not", "never", "didn't")), verb, _pick(rng, SUBJECTS), ".")
        return _words("i", _pick(rng, LOVE if positive_word else HATE), _pick(rng, SUBJECTS), ".")
    if kind == 2:      # amazing movie ! / not a good movie .
        noun = _pick(rng, NOUNS)
        if negated:
            return _words("not", _with_article(adj), noun, _pick(rng, (".", "!")))
        return _words(adj, noun, "!")
    if kind == 3:      # what an amazing film !
        if negated:
            return _words(_pick(rng, SUBJECTS), "was", "not", "what i would call", adj, ".")
        return _words("what", _with_article(adj), _pick(rng, NOUNS), "!")
    # kind 4: i found the plot (never) dull .
    neg = _pick(rng, ("not", "never", "hardly")) if negated else ""
    return _words("i found", _pick(rng, SUBJECTS).replace("this ", "the "), neg, adj, ".")


# ---------------------------------------------------------- neutral filler

_FILLERS: tuple[Callable[[random.Random], str], ...] = (
    lambda r: _words(_pick(r, ("movie", "the movie", "the film", "it")), "was full of new", _pick(r, THINGS), ","),
    lambda r: _words(_pick(r, GROUPS), "had to", _pick(r, WAITS), "till the last minute to", _pick(r, SEEN), "it ."),
    lambda r: _words("the", _pick(r, ROLES), "shot most of it in", _pick(r, PLACES), "."),
    lambda r: _words("it runs for about", _pick(r, NUMBERS), "minutes ."),
    lambda r: _words("the", _pick(r, ROLES), "had never worked with the", _pick(r, ROLES[:5]), "before ."),
    lambda r: _words("the film was not released in", _pick(r, PLACES), "until", _pick(r, YEARS), "."),
    lambda r: _words("i saw it with", _pick(r, COMPANIONS), "on", _pick(r, DAYS), "."),
    lambda r: _words("the story follows", _pick(r, PEOPLE), "who", _pick(r, ACTIONS), "."),
    lambda r: _words("there was", _with_article(_pick(r, SCENES)), "in the", _pick(r, PARTS), "."),
    lambda r: _words("most of the scenes take place in", _pick(r, PLACES), "."),
    lambda r: _words("it is based on a book from", _pick(r, YEARS), "that i have not read ."),
    lambda r: _words(_pick(r, GROUPS), "did not know the", _pick(r, ROLES), "before it came out ."),
)


def _closing(rng: random.Random, label: int) -> str:
    """A late sentence that agrees with the label (an easy, short-range hint)."""
    if rng.random() < 0.5:   # there was hardly any boring moment .
        return _words("there was hardly any", _pick(rng, NEGATIVE if label else POSITIVE), "moment .")
    return _words(_pick(rng, CLOSING_STARTS), _pick(rng, POSITIVE if label else NEGATIVE), ".")


def review(rng: random.Random, label: int, p_closing: float = 0.25) -> str:
    """One generated review with sentiment ``label`` (1 positive, 0 negative)."""
    parts = []
    if rng.random() < 0.3:
        parts.append(_words("i watched it last", _pick(rng, DAYS), "."))
    parts.append(_cue(rng, label))
    for _ in range(rng.randint(0, 6)):
        parts.append(_pick(rng, _FILLERS)(rng))
    if rng.random() < p_closing:
        parts.append(_closing(rng, label))
    return " ".join(parts)


def generate(n: int, seed: int, p_closing: float = 0.25) -> list[tuple[str, int]]:
    """``n`` (text, label) pairs, labels balanced at random, deterministic in ``seed``."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        label = rng.randrange(2)
        out.append((review(rng, label, p_closing), label))
    return out
