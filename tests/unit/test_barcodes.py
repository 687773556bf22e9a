"""Scans: NDC forms, UPC-A, GTIN and GS1 element strings in both forms."""

from __future__ import annotations

import datetime as dt

import pytest

from getmeds_desktop.services.barcodes import GS, parse_scan
from getmeds_desktop.services.errors import ValidationError

NDC11 = "00093415001"  # 0093-4150-01 as 5-4-2
GTIN = "00300934150018"  # indicator 0, prefix 03, NDC10 0093415001, check 8


@pytest.mark.parametrize("text", [
    "0093-4150-01", "00093-4150-01", NDC11, "0093415001", "300934150018", GTIN,
    f"(01){GTIN}(17)271231(10)ABC123(21)SN1",
    f"01{GTIN}17271231" + "10ABC123" + GS + "21SN1",
    f"]C101{GTIN}17271231",
])
def test_scans_that_match_the_product(text):
    assert parse_scan(text).matches(NDC11, GTIN)
    assert parse_scan(text).matches(NDC11, None)


def test_gs1_fields_are_read():
    for text in (f"(01){GTIN}(17)271231(10)ABC123(21)SN1",
                 f"01{GTIN}17271231" + "10ABC123" + GS + "21SN1"):
        s = parse_scan(text)
        assert (s.gtin, s.lot, s.expiry, s.serial) == (GTIN, "ABC123", dt.date(2027, 12, 31),
                                                       "SN1")
        assert "NDC" in s.description and "lot ABC123" in s.description


def test_a_different_product_does_not_match():
    s = parse_scan("0781-1506-10")
    assert not s.matches(NDC11, GTIN)
    assert s.description == "NDC 00781-1506-10"


@pytest.mark.parametrize(("text", "message"), [
    ("", "Scan the package"),
    ("hello", "neither a barcode nor an NDC"),
    ("300934150017", "check digit"),
    ("12345", "has 5 digits"),
    ("(01)123", "not a readable GS1"),
])
def test_bad_scans_say_what_is_wrong(text, message):
    with pytest.raises(ValidationError, match=message):
        parse_scan(text)
