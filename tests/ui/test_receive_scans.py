"""Receiving by scan: the exact GTIN first, else the packages of the same NDC
product to pick from, and what the role may do about an unknown package; the
lot and expiry the barcode carries are always kept."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QInputDialog, QMessageBox

from tests.ui.helpers import opened, window_maker

pytestmark = pytest.mark.parametrize("backend_name", ["sqlite"], indirect=True)


@pytest.fixture
def window(qtbot, gui_world, connector, empty_config) -> Iterator:
    yield from window_maker(qtbot, gui_world, connector, empty_config)


def gtin_of(ndc10: str) -> str:
    body = "003" + ndc10
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def gs1(ndc10: str, lot: str, expiry: dt.date) -> str:
    return f"01{gtin_of(ndc10)}17{expiry:%y%m%d}10{lot}"


EXPIRY = dt.date(2028, 6, 30)


def receive_dialog(qtbot, win):
    from getmeds_desktop.ui.dialogs.inventory import ReceiveDialog

    view = win.show_area("inventory")
    view.act_receive.trigger()
    return opened(qtbot, view, ReceiveDialog)


def scan(qtbot, field, text: str) -> None:
    qtbot.keyClicks(field, text)
    qtbot.keyClick(field, Qt.Key.Key_Return)


def test_the_exact_gtin_is_preferred_and_lot_and_expiry_are_kept(qtbot, window):
    win = window("clerk")
    world = window.world
    exact = world.product("Exactpack", ndc="12345-0181-30", gtin=gtin_of("1234518150"))
    world.product("Otherpack", ndc="12345-0181-50")  # the NDC the barcode also names
    dlg = receive_dialog(qtbot, win)
    scan(qtbot, dlg.scan, gs1("1234518150", "LOTX1", EXPIRY))
    qtbot.waitUntil(lambda: dlg.product.choice is not None, timeout=15000)
    assert dlg.product.choice.id == exact.id
    assert dlg.lot.text() == "LOTX1" and dlg.expiry.value() == EXPIRY


def test_other_packages_of_the_same_product_are_offered(qtbot, window, monkeypatch):
    win = window("clerk")
    world = window.world
    world.product("Familydrug", ndc="12345-0181-18", pack_size=100)
    thirty = world.product("Familydrug", ndc="12345-0181-30", pack_size=30)
    offered: list[list[str]] = []

    def pick(_parent, _title, _text, items, *_a):
        offered.append(list(items))
        return next(i for i in items if "pack of 30" in i), True

    monkeypatch.setattr(QInputDialog, "getItem", pick)
    dlg = receive_dialog(qtbot, win)
    scan(qtbot, dlg.scan, gs1("1234518160", "LOTF2", EXPIRY))  # package 60: not on file
    qtbot.waitUntil(lambda: dlg.product.choice is not None, timeout=15000)
    assert dlg.product.choice.id == thirty.id and len(offered[0]) == 2
    assert dlg.lot.text() == "LOTF2" and dlg.expiry.value() == EXPIRY
    assert "chosen from the same product's packages" in dlg.message.text()


def test_an_unknown_package_says_what_the_role_may_do(qtbot, window, monkeypatch):
    asked: list[str] = []
    monkeypatch.setattr(QMessageBox, "question",
                        lambda *a, **k: asked.append(a[2]) or QMessageBox.StandardButton.Yes)
    win = window("clerk")
    dlg = receive_dialog(qtbot, win)
    scan(qtbot, dlg.scan, gs1("9876543210", "LOTU3", EXPIRY))
    qtbot.waitUntil(lambda: "Ask an administrator" in dlg.message.text(), timeout=15000)
    assert not asked and dlg.lot.text() == "LOTU3" and dlg.expiry.value() == EXPIRY
    dlg.reject()
    # an administrator keeps the catalogue: New product, with the codes filled in
    from getmeds_desktop.ui.dialogs.inventory import ProductEditor

    admin = window("admin")
    dlg = receive_dialog(qtbot, admin)
    scan(qtbot, dlg.scan, gs1("9876543210", "LOTU4", EXPIRY))
    qtbot.waitUntil(lambda: dlg.findChild(ProductEditor) is not None, timeout=15000)
    editor = dlg.findChild(ProductEditor)
    assert asked and "Add it as a new product" in asked[0]
    assert editor.gtin.text() == gtin_of("9876543210").zfill(14)
    assert dlg.lot.text() == "LOTU4"
