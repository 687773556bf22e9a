"""The screening's clinical data: versioned YAML files with their sources,
read once (package data, so frozen builds find them through
importlib.resources) and compiled into frozen lookup structures."""

from __future__ import annotations

import dataclasses
import enum
import functools
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from importlib import resources
from typing import Any

import yaml

from ..enums import Severity
from . import names
from .model import Product

# libyaml's safe loader where PyYAML has it (every wheel does): much faster
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

__all__ = [
    "DATA_FILES",
    "AgeRule",
    "AllergyGroup",
    "DoseLimit",
    "Facts",
    "InteractionRule",
    "InteractionSeverity",
    "Knowledge",
    "KnowledgeError",
    "Members",
    "PregnancyRule",
    "Source",
    "default_knowledge",
    "facts_of",
    "load_knowledge",
]

DATA_FILES = ("allergy.yaml", "interactions.yaml", "dose.yaml", "age.yaml", "pregnancy.yaml")


class KnowledgeError(ValueError):
    """A screening data file is malformed; the message names the file and entry."""


class InteractionSeverity(str, enum.Enum):
    CONTRAINDICATED = "contraindicated"
    MAJOR = "major"
    MODERATE = "moderate"
    MINOR = "minor"

    @property
    def finding_severity(self) -> Severity:
        """Contraindicated and major interactions are stops."""
        if self in (InteractionSeverity.CONTRAINDICATED, InteractionSeverity.MAJOR):
            return Severity.SEVERE
        return Severity.MODERATE if self is InteractionSeverity.MODERATE else Severity.MILD


@dataclasses.dataclass(frozen=True)
class Source:
    id: str
    citation: str
    url: str = ""

    def text(self, detail: str = "") -> str:
        parts = [self.citation.strip()]
        if detail:
            parts.append(detail.strip())
        if self.url:
            parts.append(self.url)
        return " ".join(parts)


@dataclasses.dataclass(frozen=True)
class Facts:
    """What the checks compare about one product, computed once per product."""

    ingredients: tuple[tuple[str, tuple[str, ...], str], ...]  # moiety, its word prefixes, shown
    classes: tuple[tuple[str, str], ...]  # class key, shown name (without its code)
    therapeutic: tuple[tuple[str, str], ...]  # classes that count for duplicate therapy
    names: frozenset[str]  # keys of the product name and its brand names

    @property
    def moieties(self) -> frozenset[str]:
        return frozenset(m for m, _, _ in self.ingredients)


# Mechanism classes about enzymes and transporters: products sharing one are
# not duplicates of each other (two CYP3A4 inhibitors can be very different).
_NOT_THERAPEUTIC = ("cytochrome p450", "p glycoprotein", "transporter", "organic anion",
                    "organic cation", "breast cancer resistance", "ugt", "uridine diphosphate")


@functools.lru_cache(maxsize=4096)
def facts_of(product: Product) -> Facts:
    ingredients = []
    seen: set[str] = set()
    for ing in product.ingredients:
        m = names.moiety(ing.name)
        if m and m not in seen:
            seen.add(m)
            ingredients.append((m, names.word_prefixes(m), ing.name.strip()))
    if not ingredients and product.name.strip():
        # a product without ingredient data is screened by its own name
        m = names.moiety(product.name)
        ingredients.append((m, names.word_prefixes(m), product.name.strip()))
    classes = []
    coded = [c for c in product.classes if "[" in c]
    for c in product.classes:
        k = names.class_key(c)
        if k:
            classes.append((k, names.without_code(c)))
    if coded:  # FDA codes present: only Established Pharmacologic Classes count
        therapeutic = [(names.class_key(c), names.without_code(c))
                       for c in coded if "[EPC]" in c.upper()]
    else:
        therapeutic = [(k, shown) for k, shown in classes
                       if not any(p in k for p in _NOT_THERAPEUTIC)]
    keys = {names.key(product.name)} | {names.key(b) for b in product.brand_names}
    return Facts(tuple(ingredients), tuple(classes), tuple(therapeutic),
                 frozenset(k for k in keys if k))


@dataclasses.dataclass(frozen=True)
class Members:
    """A set of drugs by ingredient (moiety) and by class."""

    ingredients: frozenset[str] = frozenset()
    classes: frozenset[str] = frozenset()
    excluded: frozenset[str] = frozenset()  # ingredients never members, whatever their class

    def __bool__(self) -> bool:
        return bool(self.ingredients or self.classes)

    def __or__(self, other: Members) -> Members:
        return Members(self.ingredients | other.ingredients, self.classes | other.classes,
                       self.excluded | other.excluded)

    def match(self, facts: Facts) -> str | None:
        """The product's ingredient or class that is a member (as shown), or None."""
        if self.excluded and any(m in self.excluded for m, _, _ in facts.ingredients):
            return None
        if self.ingredients:
            for _, prefixes, shown in facts.ingredients:
                for p in prefixes:
                    if p in self.ingredients:
                        return shown
        if self.classes:
            for k, shown in facts.classes:
                if k in self.classes:
                    return shown
        return None

    @classmethod
    def of(cls, ingredients: Iterable[str] = (), classes: Iterable[str] = (),
           excluded: Iterable[str] = ()) -> Members:
        return cls(frozenset(m for m in (names.moiety(i) for i in ingredients) if m),
                   frozenset(k for k in (names.class_key(c) for c in classes) if k),
                   frozenset(m for m in (names.moiety(i) for i in excluded) if m))


@dataclasses.dataclass(frozen=True)
class AllergyGroup:
    id: str
    name: str
    relation: str  # "class" or "cross_sensitivity"
    aliases: frozenset[str]
    members: Members
    cross: tuple[tuple[str, Severity], ...]
    source: Source
    cite: str


@dataclasses.dataclass(frozen=True)
class InteractionRule:
    id: str
    a: Members
    b: Members
    severity: InteractionSeverity
    consequence: str
    management: str
    source: Source
    cite: str = ""

    @property
    def pair(self) -> frozenset[Members]:
        """The two sides, unordered (imported rules replace defaults by it)."""
        return frozenset((self.a, self.b))


@dataclasses.dataclass(frozen=True)
class DoseLimit:
    ingredient: str  # moiety
    max_mg_per_day: Decimal
    severity: Severity
    message: str
    source: Source
    cite: str


@dataclasses.dataclass(frozen=True)
class AgeRule:
    id: str
    members: Members
    younger_than: int | None
    from_age: int | None
    geriatric: bool  # from the pharmacy's geriatric age setting
    severity: Severity
    message: str
    source: Source
    cite: str


@dataclasses.dataclass(frozen=True)
class PregnancyRule:
    id: str
    when: str  # "pregnant" or "breastfeeding"
    members: Members
    severity: Severity
    message: str
    source: Source
    cite: str


@dataclasses.dataclass(frozen=True, eq=False)
class Knowledge:
    """Everything the checks look up, compiled from the data files."""

    versions: tuple[tuple[str, str], ...]
    groups: tuple[AllergyGroup, ...]
    synonyms: Mapping[str, tuple[str, ...]]  # allergy name key -> moieties / "group:id"
    brands: Mapping[str, tuple[str, ...]]  # brand key -> moieties
    interactions: tuple[InteractionRule, ...]
    dose_limits: Mapping[str, DoseLimit]
    age_rules: tuple[AgeRule, ...]
    pregnancy_rules: tuple[PregnancyRule, ...]
    synonym_source: Source
    brand_source: Source

    @functools.cached_property
    def group_by_id(self) -> Mapping[str, AllergyGroup]:
        return {g.id: g for g in self.groups}

    @functools.cached_property
    def group_by_alias(self) -> Mapping[str, AllergyGroup]:
        out: dict[str, AllergyGroup] = {}
        for g in self.groups:
            for a in g.aliases | {names.key(g.id), names.key(g.name)}:
                out.setdefault(a, g)
        return out

    @functools.cached_property
    def groups_of_ingredient(self) -> Mapping[str, tuple[AllergyGroup, ...]]:
        out: dict[str, list[AllergyGroup]] = {}
        for g in self.groups:
            for m in g.members.ingredients:
                out.setdefault(m, []).append(g)
        return {k: tuple(v) for k, v in out.items()}

    def with_interactions(self, rules: Sequence[InteractionRule], label: str) -> Knowledge:
        """These rules merged over the current ones: a rule for the same pair
        of drug sets replaces the current one, the others are added."""
        new_pairs = {r.pair for r in rules}
        kept = tuple(r for r in self.interactions if r.pair not in new_pairs)
        return dataclasses.replace(
            self, interactions=kept + tuple(rules),
            versions=(*self.versions, ("interactions import", label)))


# ------------------------------------------------------------------ loading


class _Where:
    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, entry: str, problem: str) -> KnowledgeError:
        return KnowledgeError(f"{self.file}, {entry}: {problem}")


def _mapping(value: Any, where: _Where, entry: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise where.fail(entry, "expected a mapping")
    return value


def _text(d: Mapping[str, Any], field: str, where: _Where, entry: str, *,
          required: bool = True) -> str:
    value = d.get(field)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise where.fail(entry, f"'{field}' is missing")
        return ""
    if not isinstance(value, (str, int, float)):
        raise where.fail(entry, f"'{field}' must be text")
    return " ".join(str(value).split())


def _names(d: Mapping[str, Any], field: str, where: _Where, entry: str) -> list[str]:
    value = d.get(field) or []
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise where.fail(entry, f"'{field}' must be a list of names")
    return list(value)


def _severity(d: Mapping[str, Any], where: _Where, entry: str) -> Severity:
    value = str(d.get("severity", "")).strip().lower()
    if value not in ("mild", "moderate", "severe"):
        raise where.fail(entry, f"severity must be mild, moderate or severe, not {value!r}")
    return Severity(value)


def _sources(doc: Mapping[str, Any], where: _Where) -> dict[str, Source]:
    raw = _mapping(doc.get("sources"), where, "sources")
    out = {}
    for sid, s in raw.items():
        s = _mapping(s, where, f"source {sid}")
        out[str(sid)] = Source(str(sid), _text(s, "citation", where, f"source {sid}"),
                               _text(s, "url", where, f"source {sid}", required=False))
    return out


def _source(d: Mapping[str, Any], sources: Mapping[str, Source], where: _Where,
            entry: str) -> Source:
    sid = _text(d, "source", where, entry)
    if sid not in sources:
        raise where.fail(entry, f"source {sid!r} is not listed under 'sources'")
    return sources[sid]


def _members(d: Mapping[str, Any], where: _Where, entry: str,
             sets: Mapping[str, Members] | None = None) -> Members:
    m = Members.of(_names(d, "ingredients", where, entry), _names(d, "classes", where, entry),
                   _names(d, "exclude", where, entry))
    for name in _names(d, "sets", where, entry):
        if sets is None or name not in sets:
            raise where.fail(entry, f"set {name!r} is not defined under 'sets'")
        m = m | sets[name]
    return m


def _ids(entries: list[Any], where: _Where, section: str) -> list[Mapping[str, Any]]:
    out = []
    seen: set[str] = set()
    for n, e in enumerate(entries, 1):
        e = _mapping(e, where, f"{section} entry {n}")
        eid = _text(e, "id", where, f"{section} entry {n}")
        if eid in seen:
            raise where.fail(eid, "the id is used twice")
        seen.add(eid)
        out.append(e)
    return out


def _load_doc(text: str, file: str) -> tuple[Mapping[str, Any], _Where]:
    where = _Where(file)
    try:
        doc = yaml.load(text, Loader=_LOADER)  # safe: no tags, no Python objects
    except yaml.YAMLError as exc:
        raise KnowledgeError(f"{file} is not valid YAML: {exc}") from None
    doc = _mapping(doc, where, "top level")
    _text(doc, "version", where, "top level")
    return doc, where


def _allergy(doc: Mapping[str, Any], where: _Where) -> dict[str, Any]:
    sources = _sources(doc, where)
    groups = []
    raw_groups = _ids(list(doc.get("groups") or []), where, "groups")
    known = {str(g["id"]) for g in raw_groups}
    for g in raw_groups:
        gid = str(g["id"])
        relation = _text(g, "relation", where, gid)
        if relation not in ("class", "cross_sensitivity"):
            raise where.fail(gid, "relation must be class or cross_sensitivity")
        members = _members(g, where, gid)
        if not members:
            raise where.fail(gid, "a group needs ingredients or classes")
        cross = []
        for c in g.get("cross") or []:
            c = _mapping(c, where, gid)
            target = _text(c, "group", where, gid)
            if target not in known:
                raise where.fail(gid, f"cross group {target!r} is not defined")
            cap = str(c.get("max_severity", "")).strip().lower()
            if cap not in ("mild", "moderate", "severe"):
                raise where.fail(gid, "max_severity must be mild, moderate or severe")
            cross.append((target, Severity(cap)))
        groups.append(AllergyGroup(
            gid, _text(g, "name", where, gid), relation,
            frozenset(names.key(a) for a in _names(g, "aliases", where, gid)),
            members, tuple(cross), _source(g, sources, where, gid),
            _text(g, "cite", where, gid, required=False)))

    def table(section: str) -> tuple[dict[str, tuple[str, ...]], Source]:
        raw = _mapping(doc.get(section), where, section)
        src = _source(raw, sources, where, section)
        out = {}
        for name, targets in _mapping(raw.get("names"), where, section).items():
            if not isinstance(targets, list) or not targets:
                raise where.fail(f"{section} {name}", "expected a list of ingredients")
            vals = []
            for t in targets:
                t = str(t)
                if t.startswith("group:"):
                    if t[6:] not in known:
                        raise where.fail(f"{section} {name}", f"group {t[6:]!r} is not defined")
                    vals.append(t)
                else:
                    vals.append(names.moiety(t))
            out[names.key(str(name))] = tuple(vals)
        return out, src

    synonyms, synonym_source = table("synonyms")
    brands, brand_source = table("brands")
    return dict(groups=tuple(groups), synonyms=synonyms, brands=brands,
                synonym_source=synonym_source, brand_source=brand_source)


def _interactions(doc: Mapping[str, Any], where: _Where) -> tuple[InteractionRule, ...]:
    sources = _sources(doc, where)
    sets = {}
    for name, s in _mapping(doc.get("sets") or {}, where, "sets").items():
        s = _mapping(s, where, f"set {name}")
        _source(s, sources, where, f"set {name}")
        sets[str(name)] = _members(s, where, f"set {name}")
    rules = []
    for e in _ids(list(doc.get("interactions") or []), where, "interactions"):
        rid = str(e["id"])
        a = _members(_mapping(e.get("a"), where, f"{rid} a"), where, f"{rid} a", sets)
        b = _members(_mapping(e.get("b"), where, f"{rid} b"), where, f"{rid} b", sets)
        if not a or not b:
            raise where.fail(rid, "both sides need ingredients, classes or sets")
        try:
            severity = InteractionSeverity(str(e.get("severity", "")).strip().lower())
        except ValueError:
            raise where.fail(rid, "severity must be contraindicated, major, moderate or "
                                  "minor") from None
        rules.append(InteractionRule(
            rid, a, b, severity, _text(e, "consequence", where, rid),
            _text(e, "management", where, rid, required=False),
            _source(e, sources, where, rid), _text(e, "cite", where, rid, required=False)))
    return tuple(rules)


def _dose(doc: Mapping[str, Any], where: _Where) -> dict[str, DoseLimit]:
    sources = _sources(doc, where)
    out = {}
    for n, e in enumerate(doc.get("ingredients") or [], 1):
        e = _mapping(e, where, f"ingredient {n}")
        ing = names.moiety(_text(e, "ingredient", where, f"ingredient {n}"))
        try:
            limit = Decimal(str(e.get("max_mg_per_day")))
        except InvalidOperation:
            raise where.fail(ing, "max_mg_per_day must be a number") from None
        if not limit > 0:
            raise where.fail(ing, "max_mg_per_day must be positive")
        out[ing] = DoseLimit(ing, limit, _severity(e, where, ing),
                             _text(e, "message", where, ing), _source(e, sources, where, ing),
                             _text(e, "cite", where, ing, required=False))
    return out


def _age(doc: Mapping[str, Any], where: _Where) -> tuple[AgeRule, ...]:
    sources = _sources(doc, where)
    out = []
    for e in _ids(list(doc.get("rules") or []), where, "rules"):
        rid = str(e["id"])
        younger, start = e.get("younger_than"), e.get("from_age")
        geriatric = start == "geriatric"
        if younger is None and start is None:
            raise where.fail(rid, "give younger_than or from_age")
        for v in (younger, None if geriatric else start):
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
                raise where.fail(rid, "ages are whole years")
        members = _members(e, where, rid)
        if not members:
            raise where.fail(rid, "a rule needs ingredients or classes")
        out.append(AgeRule(rid, members, younger, None if geriatric else start, geriatric,
                           _severity(e, where, rid), _text(e, "message", where, rid),
                           _source(e, sources, where, rid),
                           _text(e, "cite", where, rid, required=False)))
    return tuple(out)


def _pregnancy(doc: Mapping[str, Any], where: _Where) -> tuple[PregnancyRule, ...]:
    sources = _sources(doc, where)
    out = []
    for e in _ids(list(doc.get("rules") or []), where, "rules"):
        rid = str(e["id"])
        when = _text(e, "when", where, rid)
        if when not in ("pregnant", "breastfeeding"):
            raise where.fail(rid, "when must be pregnant or breastfeeding")
        members = _members(e, where, rid)
        if not members:
            raise where.fail(rid, "a rule needs ingredients or classes")
        out.append(PregnancyRule(rid, when, members, _severity(e, where, rid),
                                 _text(e, "message", where, rid),
                                 _source(e, sources, where, rid),
                                 _text(e, "cite", where, rid, required=False)))
    return tuple(out)


def load_knowledge(texts: Mapping[str, str]) -> Knowledge:
    """Compile the data files given as {file name: YAML text} (all of DATA_FILES)."""
    missing = [f for f in DATA_FILES if f not in texts]
    if missing:
        raise KnowledgeError(f"screening data files missing: {', '.join(missing)}")
    docs = {f: _load_doc(texts[f], f) for f in DATA_FILES}
    allergy = _allergy(*docs["allergy.yaml"])
    return Knowledge(
        versions=tuple((f, str(docs[f][0]["version"])) for f in DATA_FILES),
        interactions=_interactions(*docs["interactions.yaml"]),
        dose_limits=_dose(*docs["dose.yaml"]),
        age_rules=_age(*docs["age.yaml"]),
        pregnancy_rules=_pregnancy(*docs["pregnancy.yaml"]),
        **allergy,
    )


@functools.lru_cache(maxsize=1)
def default_knowledge() -> Knowledge:
    """The shipped data files, read and compiled once per process."""
    folder = resources.files(__package__).joinpath("data")
    return load_knowledge({f: folder.joinpath(f).read_text(encoding="utf-8")
                           for f in DATA_FILES})
