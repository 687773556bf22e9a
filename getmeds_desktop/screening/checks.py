"""The checks: one pure function over a :class:`ScreeningRequest`."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal

from ..enums import Severity
from . import names
from .knowledge import (
    AllergyGroup,
    Facts,
    InteractionRule,
    Knowledge,
    default_knowledge,
    facts_of,
)
from .model import (
    Allergy,
    AllergyStatus,
    Finding,
    FindingKind,
    Ingredient,
    Medication,
    MedicationSource,
    Product,
    Screening,
    ScreeningRequest,
    severity_rank,
)

__all__ = ["allergy_match", "screen"]

_KIND_ORDER = {k: n for n, k in enumerate(FindingKind)}
_BY_RANK = {1: Severity.MILD, 2: Severity.MODERATE, 3: Severity.SEVERE}
# Units counted one by one, for "the days supply does not fit the quantity"
# ("each" counts only when the dosage form is a tablet or capsule).
_COUNTABLE = frozenset("""tablet tab capsule cap caplet softgel lozenge troche
    suppository patch film""".split())
_MASS_MG = {"mg": Decimal(1), "g": Decimal(1000), "gm": Decimal(1000), "mcg": Decimal("0.001"),
            "ug": Decimal("0.001"), "µg": Decimal("0.001")}
_VOLUME = frozenset(("ml", "milliliter", "millilitre"))
_NO_PLURAL = frozenset(("ml", "each", "mg", "g", "mcg", "units"))


def screen(request: ScreeningRequest, knowledge: Knowledge | None = None) -> Screening:
    """Every check ``request.checks`` asks for, most severe finding first."""
    ctx = _Context(request, knowledge or default_knowledge())
    checks = request.checks
    findings: list[Finding] = []
    if FindingKind.ALLERGIES_NOT_ASKED in checks:
        findings += _allergies_not_asked(ctx)
    if FindingKind.ALLERGY in checks:
        findings += _allergies(ctx)
    if FindingKind.INTERACTION in checks:
        findings += _interactions(ctx)
    if FindingKind.DUPLICATE_THERAPY in checks:
        findings += _duplicates(ctx)
    if FindingKind.EARLY_REFILL in checks:
        findings += _early_refill(ctx)
    if FindingKind.DOSE in checks:
        findings += _dose(ctx)
    if FindingKind.AGE in checks:
        findings += _age(ctx)
    if FindingKind.PREGNANCY in checks:
        findings += _pregnancy(ctx)
    if FindingKind.BEYOND_USE in checks:
        findings += _beyond_use(ctx)
    findings.sort(key=lambda f: (-severity_rank(f.severity), _KIND_ORDER[f.kind], f.key))
    return Screening(tuple(findings), ctx.knowledge.versions)


@dataclasses.dataclass
class _Context:
    request: ScreeningRequest
    knowledge: Knowledge

    def __post_init__(self) -> None:
        r = self.request
        self.product = r.product
        self.facts = facts_of(r.product)
        self.today = r.local_date
        at = r.at
        own = r.prescription
        # The patient's other current medications: open prescriptions, and fills
        # whose supply has not run out, whatever their prescription's status.
        self.others: list[Medication] = [
            m for m in r.medications
            if m.active and (m.source is MedicationSource.PRESCRIPTION or at < m.supply_ends)
            and not (own is not None and m.group == own)]

    def groups(self) -> dict[str, list[Medication]]:
        out: dict[str, list[Medication]] = {}
        for m in self.others:
            out.setdefault(m.group, []).append(m)
        return out


def _describe(m: Medication, zone: dt.tzinfo | None) -> str:
    if m.source is MedicationSource.FILL:
        return (f"{m.product.name} ({m.reference}, filled {m.started.astimezone(zone):%Y-%m-%d} "
                f"for {m.days_supply} days)")
    status = f", {m.status}" if m.status else ""
    return f"{m.product.name} ({m.reference}{status})"


def _join(items: Iterable[str]) -> str:
    items = list(dict.fromkeys(items))
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _cap(severity: Severity, cap: Severity) -> Severity:
    return _BY_RANK[min(severity_rank(severity), severity_rank(cap))]


# ------------------------------------------------------------------ allergies


def _allergies_not_asked(ctx: _Context) -> list[Finding]:
    if ctx.request.patient.allergy_status is not AllergyStatus.NOT_ASKED:
        return []
    return [Finding(
        FindingKind.ALLERGIES_NOT_ASKED, Severity.MODERATE, "allergies_not_asked",
        "Allergies not asked: the patient's record does not say whether they have any "
        "allergies. Ask, and record the answer (or \"no known allergies\").",
        "the allergy record was never completed")]


@dataclasses.dataclass(frozen=True)
class AllergyMatch:
    """Why an allergy matches a product."""

    reason: str  # "brand", "same ingredient", "same class", "cross-sensitivity"
    shown: str  # the product's ingredient, class or name that matched
    explanation: str  # the end of the sentence, in plain words
    group: AllergyGroup | None = None
    max_severity: Severity = Severity.SEVERE


def allergy_match(allergen: str, product: Product, knowledge: Knowledge | None = None
                  ) -> AllergyMatch | None:
    """How ``allergen`` (as typed in the allergy record) matches ``product``,
    strongest reason first, or None."""
    k = knowledge or default_knowledge()
    facts = facts_of(product)
    akey = names.key(allergen)
    if not akey:
        return None
    ingredients: set[str] = set()
    groups: dict[str, AllergyGroup] = {}
    for target in k.synonyms.get(akey, ()) + k.brands.get(akey, ()):
        if target.startswith("group:"):
            groups[target[6:]] = k.group_by_id[target[6:]]
        else:
            ingredients.add(target)
    group = k.group_by_alias.get(akey)
    if group is not None:
        groups[group.id] = group
    named_group = bool(groups)  # the allergen names a group: it means that group only
    if not ingredients and not groups:
        ingredients.add(names.moiety(allergen))

    # 1. the product itself, by its name or a brand name
    if akey in facts.names:
        return AllergyMatch("brand", product.name, f"is {allergen} (the same product)")
    # 2. the same ingredient
    for _, prefixes, shown in facts.ingredients:
        if any(p in ingredients for p in prefixes):
            return AllergyMatch("same ingredient", shown,
                                f"contains {shown} (same ingredient)")
    # 3. a group the allergen names or one of its ingredients belongs to
    for ing in ingredients:
        for g in k.groups_of_ingredient.get(ing, ()):
            groups.setdefault(g.id, g)
    for g in groups.values():
        member = g.members.match(facts)
        if member is not None:
            if g.relation == "class":
                return AllergyMatch("same class", member,
                                    f"contains {member}, one of the {g.name} (same class)", g)
            return AllergyMatch(
                "cross-sensitivity", member,
                f"contains {member}; {g.name} can cross-react (cross-sensitivity group)", g)
    # 4. the allergen names one of the product's classes
    if not named_group and len(akey) >= 4:
        for ckey, shown in facts.classes:
            if ckey == akey or names.contains_words(ckey, akey):
                return AllergyMatch("same class", shown,
                                    f"belongs to the class {shown} (same class)")
    # 5. a group linked to those by a weaker cross-sensitivity
    for g in groups.values():
        for target, cap in g.cross:
            linked = k.group_by_id[target]
            member = linked.members.match(facts)
            if member is not None:
                return AllergyMatch(
                    "cross-sensitivity, lower risk", member,
                    f"contains {member}, one of the {linked.name}, which can cross-react with "
                    f"the {g.name} (cross-sensitivity, lower risk)", g, cap)
    return None


def _allergies(ctx: _Context) -> list[Finding]:
    out = []
    for allergy in ctx.request.patient.allergies:
        m = allergy_match(allergy.name, ctx.product, ctx.knowledge)
        if m is None:
            continue
        if allergy.intolerance and m.reason.startswith("cross-sensitivity"):
            continue  # an intolerance is not an allergy: no cross-reactions
        severity = Severity.MILD if allergy.intolerance else _cap(allergy.severity, m.max_severity)
        out.append(Finding(
            FindingKind.ALLERGY, severity, f"allergy:{names.key(allergy.name)}",
            f"Allergy: the patient's record lists {_recorded(allergy)}. "
            f"{ctx.product.name} {m.explanation}.",
            f"{m.reason}: {m.shown}" + (f" ({m.group.name})" if m.group is not None else ""),
            (m.group.source.text(m.group.cite),) if m.group is not None else ()))
    return out


def _recorded(a: Allergy) -> str:
    what = [a.severity.value if a.severity is not Severity.UNKNOWN else "severity not recorded"]
    if a.reaction and a.reaction.strip():
        what.append(a.reaction.strip())
    kind = "an intolerance to" if a.intolerance else "an allergy to"
    return f"{kind} {a.name.strip()} ({'; '.join(what)})"


# --------------------------------------------------------------- interactions


def _interactions(ctx: _Context) -> list[Finding]:
    """One finding per other prescription: the most severe rule that matches;
    the sources of every matching rule (defaults and imported) are listed."""
    hits: dict[str, list[tuple[InteractionRule, str, str, Medication]]] = {}
    for m in ctx.others:
        other = facts_of(m.product)
        for rule in ctx.knowledge.interactions:
            pair = _pair(rule.a.match, rule.b.match, ctx.facts, other) or _pair(
                rule.b.match, rule.a.match, ctx.facts, other)
            if pair is not None:
                hits.setdefault(m.group, []).append((rule, pair[0], pair[1], m))
    out = []
    for group, found in hits.items():
        # most severe first; among equals, the first listed (defaults before imports)
        rule, mine, theirs, m = max(
            found, key=lambda h: severity_rank(h[0].severity.finding_severity))
        management = f" {rule.management}" if rule.management else ""
        sources = [rule.source.text(rule.cite)] + [
            r.source.text(r.cite) for r, *_ in found if r is not rule]
        out.append(Finding(
            FindingKind.INTERACTION, rule.severity.finding_severity,
            f"interaction:{rule.id}:{group}",
            f"Interaction ({rule.severity.value}): {mine} in {ctx.product.name} with "
            f"{theirs} in {_describe(m, ctx.request.zone)}. {rule.consequence}{management}",
            f"{mine} taken with {theirs}", tuple(dict.fromkeys(sources))))
    return out


_Matcher = Callable[[Facts], "str | None"]


def _pair(first: _Matcher, second: _Matcher, mine: Facts, theirs: Facts
          ) -> tuple[str, str] | None:
    a = first(mine)
    if a is None:
        return None
    b = second(theirs)
    return None if b is None else (a, b)


# ----------------------------------------------------------- duplicate therapy


def _duplicates(ctx: _Context) -> list[Finding]:
    mine = ctx.facts
    my_moieties = {m: shown for m, _, shown in mine.ingredients}
    my_classes = dict(mine.therapeutic)
    out = []
    for group, meds in ctx.groups().items():
        found: tuple[str, str, Medication] | None = None
        for m in meds:
            other = facts_of(m.product)
            shared = [my_moieties[x] for x, _, _ in other.ingredients if x in my_moieties]
            if shared:
                found = ("same ingredient", _join(shared), m)
                break
            if found is None:
                classes = [my_classes[k] for k, _ in other.therapeutic if k in my_classes]
                if classes:
                    found = ("same therapeutic class", _join(classes), m)
        if found is None:
            continue
        reason, what, m = found
        verb = "also contains" if reason == "same ingredient" else "is also in the class"
        out.append(Finding(
            FindingKind.DUPLICATE_THERAPY, Severity.MODERATE, f"duplicate:{group}",
            f"Duplicate therapy: {_describe(m, ctx.request.zone)} {verb} {what} ({reason}), "
            f"and the "
            f"patient still has it {'on hand' if m.source is MedicationSource.FILL else 'open'}.",
            f"{reason}: {what}"))
    return out


# ---------------------------------------------------------------- early refill


def _early_refill(ctx: _Context) -> list[Finding]:
    r = ctx.request
    s = r.settings
    since = r.at - dt.timedelta(days=s.early_refill_window_days)
    fills = sorted((m for m in r.medications
                    if m.source is MedicationSource.FILL and m.active and m.days_supply > 0
                    and since <= m.started <= r.at), key=lambda m: m.started)
    worst: tuple[float, Finding] | None = None
    for moiety, _, shown in ctx.facts.ingredients:
        chain: list[Medication] = []
        supply_end: dt.datetime | None = None
        for m in fills:
            if moiety not in facts_of(m.product).moieties:
                continue
            if supply_end is None or m.started >= supply_end:
                chain = []  # the earlier supply had run out: a new course
                supply_end = m.started
            chain.append(m)
            supply_end = max(supply_end, m.started) + dt.timedelta(days=m.days_supply)
        if not chain or supply_end is None or supply_end <= r.at:
            continue
        start = chain[0].started
        total = sum(m.days_supply for m in chain)
        elapsed = max((r.at - start).total_seconds() / 86400, 0.0)
        used = elapsed / total
        controlled = r.product.controlled or any(m.product.controlled for m in chain)
        percent = s.controlled_early_refill_percent if controlled else s.early_refill_percent
        if used >= percent / 100:
            continue
        due = (start + dt.timedelta(days=total * percent / 100)).astimezone(r.zone)
        fills_text = _join(f"{m.reference} ({m.product.name}, {m.days_supply} days)"
                           for m in chain)
        finding = Finding(
            FindingKind.EARLY_REFILL, Severity.SEVERE if controlled else Severity.MODERATE,
            f"early_refill:{moiety}:{chain[-1].reference}",
            f"Early refill: {len(chain)} fill{'s' if len(chain) > 1 else ''} of {shown} since "
            f"{start.astimezone(r.zone):%Y-%m-%d} supplied {total} days ({fills_text}); "
            f"{elapsed:.0f} days have passed, so only {used:.0%} of that supply should be used. "
            f"A refill is due after {percent}% ({due:%Y-%m-%d}).",
            f"supply on hand: {used:.0%} of {total} days used, "
            f"{'controlled ' if controlled else ''}threshold {percent}%")
        if worst is None or used < worst[0]:
            worst = (used, finding)
    return [] if worst is None else [worst[1]]


# ------------------------------------------------------------------------ dose


def _countable(p: Product) -> bool:
    unit = names.key(p.unit or "")
    form = names.key(p.dosage_form or "")
    return unit in _COUNTABLE or (unit in ("", "each") and ("tablet" in form or "capsule" in form))


def mg_per_unit(ing: Ingredient, product: Product) -> Decimal | None:
    """Milligrams of ``ing`` in one dispensed unit of ``product``, when the
    strength says (500 mg per tablet; 160 mg/5 mL in a product dispensed in mL)."""
    if ing.strength is None or not ing.unit:
        return None
    unit = ing.unit.lower().replace(" ", "")
    dispensed = names.key(product.unit or "")
    if "/" in unit:
        num, den = unit.split("/", 1)
        digits = "".join(ch for ch in den if ch.isdigit() or ch == ".")
        den_unit = den[len(digits):]
        try:
            per = Decimal(digits) if digits else Decimal(1)
        except ArithmeticError:
            return None
        if num not in _MASS_MG or per <= 0:
            return None
        if den_unit in _VOLUME and dispensed in _VOLUME:
            return ing.strength * _MASS_MG[num] / per
        if den_unit == dispensed or (per == 1 and den_unit in _COUNTABLE):
            return ing.strength * _MASS_MG[num] / per
        return None
    if unit not in _MASS_MG or dispensed in _VOLUME:
        return None
    return ing.strength * _MASS_MG[unit]


def _dose(ctx: _Context) -> list[Finding]:
    r = ctx.request
    p = r.product
    qty = Decimal(r.quantity)
    out: list[Finding] = []
    unit = p.unit or "units"
    if qty <= 0 or r.days_supply <= 0:
        return [Finding(
            FindingKind.DOSE, Severity.SEVERE, "dose:days_supply",
            f"Dose: the days supply does not fit the quantity ({_units(qty, unit)} for "
            f"{r.days_supply} days).", "quantity and days supply must both be positive")]
    per_day = qty / r.days_supply
    if p.max_units_per_day is not None and per_day > p.max_units_per_day:
        out.append(Finding(
            FindingKind.DOSE, Severity.SEVERE, "dose:units_per_day",
            f"Dose: {_units(qty, unit)} for {r.days_supply} days is {_units(per_day, unit)} a day; "
            f"the most for {p.name} is {_num(p.max_units_per_day)} a day.",
            f"{_num(per_day)} a day is above the product maximum of "
            f"{_num(p.max_units_per_day)}"))
    if _countable(p) and per_day > r.settings.implausible_units_per_day:
        out.append(Finding(
            FindingKind.DOSE, Severity.SEVERE, "dose:days_supply",
            f"Dose: the days supply does not fit the quantity: {_units(qty, unit)} in "
            f"{r.days_supply} days is {_units(per_day, unit)} a day. Check the quantity and "
            f"the days supply.",
            f"more than {_units(Decimal(r.settings.implausible_units_per_day), unit)} a day"))
    limit = r.settings.schedule_ii_max_days
    if p.schedule_ii and limit is not None and r.days_supply > limit:
        # No federal limit on one Schedule II prescription (21 CFR 1306.12(b)
        # limits several written together to 90 days); the pharmacy's setting
        # (state law) makes a longer supply a stop for the pharmacist.
        out.append(Finding(
            FindingKind.DOSE, Severity.SEVERE, "dose:schedule_ii_days",
            f"Dose: a {r.days_supply}-day supply of {p.name}, a Schedule II substance, is "
            f"longer than the {limit} days this pharmacy allows without a pharmacist's "
            f"review.", f"Schedule II supply over {limit} days"))
    out += _ingredient_maxima(ctx, per_day)
    return out


def _ingredient_maxima(ctx: _Context, per_day: Decimal) -> list[Finding]:
    out = []
    limits = ctx.knowledge.dose_limits
    for ing in ctx.product.ingredients:
        moiety = names.moiety(ing.name)
        limit = limits.get(moiety)
        if limit is None:
            continue
        mg = mg_per_unit(ing, ctx.product)
        if mg is None:
            continue
        mine = mg * per_day
        total = mine
        parts = [f"{_num(mine)} mg a day from this {ctx.product.name}"]
        for meds in ctx.groups().values():
            m = _current_supply(meds)
            if m is None or m.days_supply <= 0:
                continue
            for other in m.product.ingredients:
                if names.moiety(other.name) != moiety:
                    continue
                omg = mg_per_unit(other, m.product)
                if omg is None:
                    continue
                daily = omg * Decimal(m.quantity) / m.days_supply
                total += daily
                parts.append(f"{_num(daily)} mg a day from {_describe(m, ctx.request.zone)}")
        if total > limit.max_mg_per_day:
            out.append(Finding(
                FindingKind.DOSE, limit.severity, f"dose:{moiety}",
                f"Dose: {_num(total)} mg of {ing.name} a day in all ({_join(parts)}); "
                f"{limit.message}.",
                f"{ing.name}: {_num(total)} mg a day, maximum {_num(limit.max_mg_per_day)} mg",
                (limit.source.text(limit.cite),)))
    return out


def _current_supply(meds: Sequence[Medication]) -> Medication | None:
    """What the patient takes under one prescription: its latest fill on hand,
    else the open prescription itself."""
    fills = [m for m in meds if m.source is MedicationSource.FILL]
    if fills:
        return max(fills, key=lambda m: m.started)
    return meds[0] if meds else None


def _units(amount: Decimal, unit: str) -> str:
    """"1,000 tablets", "1 tablet", "150 mL"."""
    text = _num(amount)
    if amount == 1 or unit.lower() in _NO_PLURAL or unit.endswith("s"):
        return f"{text} {unit}"
    return f"{text} {unit}s"


def _num(value: Decimal | float | int) -> str:
    d = Decimal(value)
    if d == d.to_integral_value():
        return f"{int(d):,}"
    return f"{d:,.1f}"


# --------------------------------------------------------- age and pregnancy


def _age(ctx: _Context) -> list[Finding]:
    r = ctx.request
    age = r.patient.age_on(ctx.today)
    if age is None:
        return []
    out = []
    for rule in ctx.knowledge.age_rules:
        applies = ((rule.younger_than is not None and age < rule.younger_than)
                   or (rule.from_age is not None and age >= rule.from_age)
                   or (rule.geriatric and age >= r.settings.geriatric_age))
        if not applies:
            continue
        shown = rule.members.match(ctx.facts)
        if shown is None:
            continue
        years = "younger than 1 year" if age < 1 else f"{age} year{'s' if age != 1 else ''} old"
        out.append(Finding(
            FindingKind.AGE, rule.severity, f"age:{rule.id}",
            f"Age: the patient is {years}; {ctx.product.name} contains {shown}: {rule.message}.",
            f"age {age} ({rule.id})", (rule.source.text(rule.cite),)))
    return out


def _pregnancy(ctx: _Context) -> list[Finding]:
    patient = ctx.request.patient
    states = {"pregnant": patient.pregnant, "breastfeeding": patient.breastfeeding}
    out = []
    for rule in ctx.knowledge.pregnancy_rules:
        if not states[rule.when]:
            continue
        shown = rule.members.match(ctx.facts)
        if shown is None:
            continue
        out.append(Finding(
            FindingKind.PREGNANCY, rule.severity, f"pregnancy:{rule.id}",
            f"{'Pregnancy' if rule.when == 'pregnant' else 'Breastfeeding'}: the patient is "
            f"{rule.when}; {ctx.product.name} contains {shown}: {rule.message}.",
            f"patient is {rule.when} ({rule.id})", (rule.source.text(rule.cite),)))
    return out


# ------------------------------------------------------------------- beyond use


def _beyond_use(ctx: _Context) -> list[Finding]:
    r = ctx.request
    expiry = r.lot_expiry
    if expiry is None:
        return []
    if expiry < ctx.today:
        return [Finding(
            FindingKind.BEYOND_USE, Severity.SEVERE, f"beyond_use:{expiry.isoformat()}",
            f"Beyond use: the lot expired on {expiry:%Y-%m-%d}; do not dispense it.",
            "the lot has expired")]
    end = ctx.today + dt.timedelta(days=max(r.days_supply, 0))
    if expiry >= end:
        return []
    return [Finding(
        FindingKind.BEYOND_USE, Severity.MODERATE, f"beyond_use:{expiry.isoformat()}",
        f"Beyond use: the lot expires on {expiry:%Y-%m-%d}, before the end of the "
        f"{r.days_supply}-day supply ({end:%Y-%m-%d}). Print the discard-by date "
        f"{expiry:%Y-%m-%d} on the label, or choose a lot with a later expiry.",
        f"lot expiry {expiry:%Y-%m-%d} is before {end:%Y-%m-%d}")]
