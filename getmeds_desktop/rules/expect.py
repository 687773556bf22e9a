"""``expect``: what a step must lead to, one entry per expectation in
:data:`EXPECTATIONS` (how it is read from the file and how it is checked).

A check returns None when the expectation holds, or a :class:`Mismatch`
(``expected ..., got ...``).
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
import uuid
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from .. import db
from ..models import ControlledRegisterEntry, StockLot, StockMovement
from ..services import inventory, recalls
from ..services.context import SYSTEM
from ..services.dispensing import DispenseResult
from . import vocabulary as v
from .setup import World
from .yamlfile import YSeq


@dataclasses.dataclass(frozen=True)
class Refusal:
    kind: str  # one of vocabulary.REFUSAL_KINDS
    message: str  # the app's own sentence


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one step did."""

    refusal: Refusal | None = None
    warnings: tuple[str, ...] = ()  # the kinds screening raised for the step
    dispense: DispenseResult | None = None
    lot_id: uuid.UUID | None = None  # the lot a step changed (quarantine, recall)


@dataclasses.dataclass(frozen=True)
class Mismatch:
    expected: str
    got: str


@dataclasses.dataclass(frozen=True)
class Refs:
    """What a case file may name at a point of the case (checked on reading)."""

    products: Collection[str]
    controlled: Collection[str]
    patients: Collection[str] = ()


@dataclasses.dataclass(frozen=True)
class Expectation:
    name: str
    means: str  # for the documentation and the messages
    read: Callable[[Any, int, str, Refs], Any]
    check: Callable[[Any, Outcome, World], Mismatch | None]


EXPECTATIONS: dict[str, Expectation] = {}


def expectation(name: str, means: str, read: Callable[[Any, int, str, Refs], Any]
                ) -> Callable[[Callable[[Any, Outcome, World], Mismatch | None]],
                              Callable[[Any, Outcome, World], Mismatch | None]]:
    def register(check: Callable[[Any, Outcome, World], Mismatch | None]
                 ) -> Callable[[Any, Outcome, World], Mismatch | None]:
        EXPECTATIONS[name] = Expectation(name, means, read, check)
        return check
    return register


def _show(items: Collection[str]) -> str:
    return "[" + ", ".join(items) + "]" if items else "[]"


def _words(what: str, items: Collection[str]) -> str:
    """'warnings [allergy]', or 'no warnings'."""
    return f"{what} {_show(items)}" if items else f"no {what}"


def _refusal_words(r: Refusal | None) -> str:
    return "success" if r is None else f"refused ({r.kind}): {r.message}"


# ------------------------------------------------------------------ refused


def _read_refused(value: Any, line: int, what: str, refs: Refs) -> bool | str:
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "false", "no"):
        return value.strip().lower() in ("true", "yes")
    if isinstance(value, str) and value.strip() in v.REFUSAL_KINDS:
        return value.strip()
    hint = v.suggest(value, v.REFUSAL_KINDS) if isinstance(value, str) else ""
    v.fail(f"{what}: 'refused' must be true, false or a refusal kind "
           f"({', '.join(v.REFUSAL_KINDS)}), not {v.describe(value)}{hint}", line)


def check_refused(expected: bool | str | None, out: Outcome) -> Mismatch | None:
    """Checked first for every step: a step that is refused without ``refused``
    in its expectations fails the case."""
    got = out.refusal
    if expected is None or expected is False:
        return None if got is None else Mismatch("success", _refusal_words(got))
    if got is None:
        return Mismatch("refused" if expected is True else f"refused ({expected})", "success")
    if expected is not True and got.kind != expected:
        return Mismatch(f"refused ({expected})", _refusal_words(got))
    return None


EXPECTATIONS["refused"] = Expectation(
    "refused", "the step is refused (true), or refused for this reason (a refusal kind); "
    "false: it succeeds (the default)", _read_refused,
    lambda expected, out, world: check_refused(expected, out))


# ----------------------------------------------------------------- warnings


def _read_kinds(value: Any, line: int, what: str, refs: Refs) -> tuple[str, ...]:
    if isinstance(value, str):  # a single kind without brackets
        value_list: list[Any] = [value]
        lines = [line]
    else:
        seq = v.as_list(value, line, what)
        value_list, lines = list(seq), [seq.line_of(i) for i in range(len(seq))]
    return tuple(sorted({v.warning_kind(k, at, what) for k, at in zip(value_list, lines,
                                                                      strict=True)}))


@expectation("warnings", "exactly these warning kinds were raised (in any order; [] for "
             "none)", lambda value, line, what, refs: _read_kinds(value, line,
                                                                 f"{what}: warnings", refs))
def _warnings(expected: tuple[str, ...], out: Outcome, world: World) -> Mismatch | None:
    got = tuple(sorted(set(out.warnings)))
    return None if got == expected else Mismatch(_words("warnings", expected),
                                                 _words("warnings", got))


@expectation("warnings_include", "at least these warning kinds were raised",
             lambda value, line, what, refs: _read_kinds(value, line,
                                                         f"{what}: warnings_include", refs))
def _warnings_include(expected: tuple[str, ...], out: Outcome, world: World
                      ) -> Mismatch | None:
    missing = [k for k in expected if k not in out.warnings]
    return None if not missing else Mismatch(
        f"warnings including {_show(expected)}", _words("warnings", sorted(set(out.warnings))))


# ----------------------------------------------------------------- the fill


def _read_count(name: str) -> Callable[[Any, int, str, Refs], int]:
    return lambda value, line, what, refs: v.whole(value, line, f"{what}: '{name}'",
                                                   minimum=0, maximum=10_000_000)


@expectation("dispensed", "the fill dispensed this quantity (0 when it was refused)",
             _read_count("dispensed"))
def _dispensed(expected: int, out: Outcome, world: World) -> Mismatch | None:
    got = out.dispense.quantity if out.dispense else 0
    return None if got == expected else Mismatch(f"dispensed {expected}", f"dispensed {got}")


@expectation("owed", "after the fill, this quantity is still owed to the patient",
             _read_count("owed"))
def _owed(expected: int, out: Outcome, world: World) -> Mismatch | None:
    if out.dispense is None:
        return Mismatch(f"owed {expected}", "no fill")
    got = out.dispense.owed_after
    return None if got == expected else Mismatch(f"owed {expected}", f"owed {got}")


@expectation("days_supply", "the fill records this days supply (a part of a fill: its own, "
             "in proportion to its quantity)", _read_count("days_supply"))
def _days_supply(expected: int, out: Outcome, world: World) -> Mismatch | None:
    if out.dispense is None:
        return Mismatch(f"days supply {expected}", "no fill")
    got = out.dispense.days_supply
    return None if got == expected else Mismatch(f"days supply {expected}",
                                                 f"days supply {got}")


def _read_lots(value: Any, line: int, what: str, refs: Refs) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value.strip(),)
    seq = v.as_list(value, line, f"{what}: lots")
    out = []
    for i, item in enumerate(seq):
        if not isinstance(item, str) or not item.strip():
            v.fail(f"{what}: each of 'lots' must be a lot number, not {v.describe(item)}",
                   seq.line_of(i))
        out.append(item.strip())
    return tuple(out)


@expectation("lots", "the fill took stock from exactly these lots, in this order ([] for "
             "none)", _read_lots)
def _lots(expected: tuple[str, ...], out: Outcome, world: World) -> Mismatch | None:
    got = tuple(a.lot_number for a in out.dispense.allocations) if out.dispense else ()
    if tuple(x.upper() for x in got) == tuple(x.upper() for x in expected):
        return None
    return Mismatch(_words("lots", expected), _words("lots", got))


# ------------------------------------------------------------ stock records


def _read_product_figures(figure: str) -> Callable[[Any, int, str, Refs],
                                                   tuple[tuple[str, int], ...]]:
    """``{product: p, <figure>: n}`` or a list of them."""
    def read(value: Any, line: int, what: str, refs: Refs) -> tuple[tuple[str, int], ...]:
        items: list[tuple[Any, int]]
        if isinstance(value, YSeq):
            items = [(item, value.line_of(i)) for i, item in enumerate(value)]
        else:
            items = [(value, line)]
        out = []
        for item, at in items:
            m = v.as_map(item, at, what)
            v.check_keys(m, what, ("product", figure), required=("product", figure))
            product = v.required_text(m, "product", what, max_len=40)
            if product not in refs.products:
                v.fail(f"{what}: product '{product}' is not one of setup's products"
                       f"{v.suggest(product, refs.products)}", m.line_of("product"))
            if figure == "balance" and product not in refs.controlled:
                v.fail(f"{what}: {product} is not a controlled substance, so it has no "
                       "register balance (use on_hand)", m.line_of("product"))
            n = v.number(m, figure, what, minimum=0, maximum=10_000_000)
            assert n is not None
            out.append((product, n))
        return tuple(out)
    return read


def _balances(world: World, product_id: uuid.UUID) -> tuple[int, int]:
    """(the register's last running balance, the ledger's sum) of a product."""
    with db.read_session(world.sf) as s:
        register = s.scalar(
            sa.select(ControlledRegisterEntry.balance_after)
            .where(ControlledRegisterEntry.product_id == product_id)
            .order_by(ControlledRegisterEntry.id.desc()).limit(1)) or 0
        ledger = s.scalar(
            sa.select(sa.func.coalesce(sa.func.sum(StockMovement.quantity), 0))
            .join(StockLot, StockLot.id == StockMovement.lot_id)
            .where(StockLot.product_id == product_id)) or 0
    return int(register), int(ledger)


@expectation("register_balance", "the controlled-substance register's running balance of "
             "the product is this, and equals the stock ledger",
             _read_product_figures("balance"))
def _register_balance(expected: tuple[tuple[str, int], ...], out: Outcome, world: World
                      ) -> Mismatch | None:
    for product, balance in expected:
        register, ledger = _balances(world, world.products[product].id)
        if register != balance or register != ledger:
            extra = "" if register == ledger else f" (the stock ledger has {ledger})"
            return Mismatch(f"register balance of {product} {balance}",
                            f"{register}{extra}")
    return None


def _read_register_entry(value: Any, line: int, what: str, refs: Refs
                         ) -> tuple[str, str, int]:
    m = v.as_map(value, line, what)
    v.check_keys(m, what, ("product", "kind", "quantity"),
                 required=("product", "kind", "quantity"))
    product = v.required_text(m, "product", what, max_len=40)
    if product not in refs.controlled:
        v.fail(f"{what}: '{product}' is not a controlled product of the case at this step, "
               "so it has no register", m.line_of("product"))
    kind = v.required_text(m, "kind", what, max_len=20).strip()
    kinds = ("receipt", "dispense", "adjustment", "return", "write_off", "count", "transfer",
             "restock")
    if kind not in kinds:
        v.fail(f"{what}: kind must be one of {', '.join(kinds)}, not '{kind}'",
               m.line_of("kind"))
    n = v.number(m, "quantity", what, minimum=-10_000_000, maximum=10_000_000)
    assert n is not None
    return product, kind, n


@expectation("register_entry", "the product's latest controlled-register entry is of this "
             "kind and quantity (a count that matches: kind count, quantity 0)",
             _read_register_entry)
def _register_entry(expected: tuple[str, str, int], out: Outcome, world: World
                    ) -> Mismatch | None:
    product, kind, quantity = expected
    with db.read_session(world.sf) as s:
        row = s.execute(
            sa.select(ControlledRegisterEntry.kind, ControlledRegisterEntry.quantity)
            .where(ControlledRegisterEntry.product_id == world.products[product].id)
            .order_by(ControlledRegisterEntry.id.desc()).limit(1)).first()
    got = "no entry" if row is None else f"{row[0].value} of {row[1]}"
    if row is None or (row[0].value, row[1]) != (kind, quantity):
        return Mismatch(f"latest register entry of {product}: {kind} of {quantity}", got)
    return None


@expectation("on_hand", "the stock ledger holds this quantity of the product (all lots, "
             "whatever their status)", _read_product_figures("quantity"))
def _on_hand(expected: tuple[tuple[str, int], ...], out: Outcome, world: World
             ) -> Mismatch | None:
    for product, quantity in expected:
        _, ledger = _balances(world, world.products[product].id)
        if ledger != quantity:
            return Mismatch(f"{quantity} of {product} on hand", f"{ledger}")
    return None


# -------------------------------------------------------------------- label


def _norm(s: str) -> str:
    return " ".join(s.split()).casefold()


def label_text(world: World, dispense_id: uuid.UUID) -> str:
    """The text of the dispense's label, as the reports module renders it."""
    from pypdf import PdfReader

    from ..reports import ReportParams, generate
    from ..services.context import SYSTEM

    with tempfile.TemporaryDirectory(prefix="getmeds-label-") as folder:
        out = Path(folder) / "label.pdf"
        generate(world.sf, SYSTEM, "label", ReportParams(dispense_id=dispense_id), out)
        reader = PdfReader(out)
        return "\n".join(page.extract_text() or "" for page in reader.pages)


def _read_texts(value: Any, line: int, what: str, refs: Refs) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
        lines = [line]
    else:
        seq = v.as_list(value, line, f"{what}: label_contains")
        lines = [seq.line_of(i) for i in range(len(seq))]
    out = []
    for item, at in zip(value, lines, strict=True):
        if not isinstance(item, str) or not item.strip():
            v.fail(f"{what}: each of 'label_contains' must be text, not {v.describe(item)}",
                   at)
        out.append(item)
    return tuple(out)


@expectation("label_contains", "the fill's label (rendered as a PDF and read back) shows "
             "each of these texts (case and spacing do not matter)", _read_texts)
def _label_contains(expected: tuple[str, ...], out: Outcome, world: World) -> Mismatch | None:
    if out.dispense is None:
        return Mismatch(f"a label containing {_show([repr(t) for t in expected])}", "no fill")
    shown = label_text(world, out.dispense.dispense_id)
    missing = [t for t in expected if _norm(t) not in _norm(shown)]
    if not missing:
        return None
    flat = re.sub(r"\s+", " ", shown).strip()
    return Mismatch(f"the label to contain {_show([repr(t) for t in missing])}",
                    f"a label reading {flat[:300]!r}")


# ------------------------------------------------------ recalls and reorders


def _read_keys(kind: str, of: Callable[[Refs], Collection[str]]
               ) -> Callable[[Any, int, str, Refs], tuple[str, ...]]:
    def read(value: Any, line: int, what: str, refs: Refs) -> tuple[str, ...]:
        seq = v.as_list(value, line, f"{what}: a list of {kind}s")
        known = of(refs)
        out = []
        for i, item in enumerate(seq):
            at = seq.line_of(i)
            if not isinstance(item, str) or item not in known:
                v.fail(f"{what}: {v.describe(item)} is not one of setup's {kind}s"
                       f"{v.suggest(str(item), known)}", at)
            out.append(item)
        return tuple(out)
    return read


@expectation("recall_patients", "the recall's list of patients who received the lot (from "
             "the lot dispensed, the scanned one when a scan named it) is exactly these "
             "patients", _read_keys("patient", lambda r: r.patients))
def _recall_patients(expected: tuple[str, ...], out: Outcome, world: World
                     ) -> Mismatch | None:
    assert out.lot_id is not None
    listed = recalls.recipients(world.sf, SYSTEM, out.lot_id)
    names = {pid: key for key, pid in world.patients.items()}
    got = {names.get(r.patient_id, str(r.patient_id)) for r in listed.rows}
    if got == set(expected):
        return None
    return Mismatch(_words("patients", sorted(expected)), _words("patients", sorted(got)))


@expectation("reorder", "the reorder suggestions (products whose dispensable stock, not "
             "expired, quarantined or recalled, is at or below their reorder level) are "
             "exactly these products", _read_keys("product", lambda r: r.products))
def _reorder(expected: tuple[str, ...], out: Outcome, world: World) -> Mismatch | None:
    ids = {p.id: key for key, p in world.products.items()}
    got = {ids[r.product_id] for r in inventory.low_stock(world.sf) if r.product_id in ids}
    if got == set(expected):
        return None
    return Mismatch(_words("products", sorted(expected)), _words("products", sorted(got)))


def read_expect(value: Any, line: int, what: str, allowed: Collection[str], refs: Refs
                ) -> dict[str, Any]:
    """The ``expect`` mapping of a step, read and checked."""
    if value is None:
        return {}
    m = v.as_map(value, line, f"{what}: expect")
    for key in m:
        if key in EXPECTATIONS and key not in allowed:
            v.fail(f"{what}: '{key}' cannot be expected of this step (it can expect: "
                   f"{', '.join(sorted(allowed))})", m.line_of(key))
    v.check_keys(m, f"{what}: expect", [k for k in EXPECTATIONS if k in allowed])
    if "warnings" in m and "warnings_include" in m:
        v.fail(f"{what}: give 'warnings' (exactly) or 'warnings_include' (at least), not both",
               m.line_of("warnings_include"))
    out: dict[str, Any] = {}
    for key, raw in m.items():
        if raw is None:
            v.fail(f"{what}: expect: '{key}' has no value (write [] for an empty list)",
                   m.line_of(key))
        out[key] = EXPECTATIONS[key].read(raw, m.line_of(key), what, refs)
    return out


__all__ = ["EXPECTATIONS", "Expectation", "Mismatch", "Outcome", "Refs", "Refusal",
           "check_refused", "label_text", "read_expect"]
