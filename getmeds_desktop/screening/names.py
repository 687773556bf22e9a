"""Comparing drug names the way a pharmacist reads them.

Case, punctuation and plurals never matter ("Penicillins" is "penicillin"),
a class code such as "[EPC]" is dropped, and the salt or hydrate of an
ingredient is not part of its name ("Morphine Sulfate" is morphine, "Albuterol
Sulfate" is albuterol): so "sulfa" can never match a sulfate salt.
"""

from __future__ import annotations

import functools
import re

__all__ = ["class_key", "contains_words", "key", "moiety", "starts_with_words", "without_code",
           "word_prefixes"]

_CODE = re.compile(r"\s*\[[A-Za-z/ ]+\]\s*$")
_NON_WORD = re.compile(r"[^a-z0-9]+")

# Salt, ester-free counter-ion and hydrate words: never the active moiety.
_SALTS = frozenset("""
    hydrochloride hcl dihydrochloride hydrobromide hbr sulfate sulphate bisulfate
    phosphate diphosphate sodium disodium potassium dipotassium calcium magnesium
    tartrate bitartrate succinate besylate maleate dimaleate mesylate dimesylate citrate
    hyclate monohydrate dihydrate trihydrate hemihydrate sesquihydrate anhydrous
    acetate fumarate hemifumarate bromide chloride bicarbonate carbonate oxide hydroxide
    lactate gluconate napsylate tosylate stearate pamoate xinafoate hydrate
""".split())
# Words that end in "s" but are not plurals.
_NOT_PLURAL = frozenset("""
    as is us bis plus tetanus virus diabetes herpes psoriasis sepsis analysis
    sinus pertussis lactobacillus bacillus
""".split())


def _singular(word: str) -> str:
    if len(word) <= 3 or word in _NOT_PLURAL or not word.endswith("s"):
        return word
    if word.endswith(("ss", "us", "is", "ys")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "xes")):
        return word[:-2]
    return word[:-1]


@functools.lru_cache(maxsize=8192)
def _words(text: str) -> tuple[str, ...]:
    text = _CODE.sub("", text).lower()
    return tuple(_singular(w) for w in _NON_WORD.sub(" ", text).split())


@functools.lru_cache(maxsize=8192)
def key(text: str) -> str:
    """Case, punctuation and plurals folded: "Sulfonamides" -> "sulfonamide"."""
    return " ".join(_words(text))


@functools.lru_cache(maxsize=8192)
def class_key(text: str) -> str:
    """A drug class name without its code: "Penicillins [CS]" -> "penicillin"."""
    return " ".join(_words(text))


@functools.lru_cache(maxsize=8192)
def moiety(text: str) -> str:
    """An ingredient without its salt or hydrate: "Morphine Sulfate" ->
    "morphine". A name made only of such words is kept whole ("Potassium
    Chloride")."""
    words = _words(text)
    kept = tuple(w for w in words if w not in _SALTS)
    return " ".join(kept or words)


def without_code(text: str) -> str:
    """A class name as shown: "Penicillin-class Antibacterial [EPC]" -> without " [EPC]"."""
    return _CODE.sub("", text).strip()


def starts_with_words(whole: str, start: str) -> bool:
    """True when the words of ``start`` begin ``whole`` ("penicillin g" begins
    "penicillin g benzathine"; "sulfa" does not begin "sulfamethoxazole")."""
    return whole == start or whole.startswith(start + " ")


def word_prefixes(text: str) -> tuple[str, ...]:
    """"penicillin g benzathine" -> ("penicillin", "penicillin g", "penicillin g benzathine")."""
    words = text.split()
    return tuple(" ".join(words[: i + 1]) for i in range(len(words)))


def contains_words(whole: str, part: str) -> bool:
    """True when ``part`` appears in ``whole`` as whole words."""
    return f" {part} " in f" {whole} "
