"""FDA NDC Directory import at full size.

``ndc_import_s``: generated product.txt/package.txt in the FDA's format (about
70,000 products with two packages each: 140,000 package NDCs; the 4-4-2, 5-3-2
and 5-4-1 forms; every schedule; multi-ingredient rows; drug classes), imported
into the benchmark database, which already holds the seeded catalogue.
``ndc_reimport_s``: the same files again (every product updated).
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from getmeds_desktop import db
from getmeds_desktop.services.context import SYSTEM
from getmeds_desktop.services.ndc_import import (
    PUBLISHED_PACKAGE_COLUMNS,
    PUBLISHED_PRODUCT_COLUMNS,
    import_directory,
)

from .common import BenchDatabase

PRODUCT_HEADER = "\t".join(PUBLISHED_PRODUCT_COLUMNS)
PACKAGE_HEADER = "\t".join(PUBLISHED_PACKAGE_COLUMNS)
SUBSTANCES = ["ACETAMINOPHEN", "IBUPROFEN", "AMOXICILLIN", "LISINOPRIL", "METFORMIN "
              "HYDROCHLORIDE", "ATORVASTATIN CALCIUM", "OXYCODONE HYDROCHLORIDE", "ALPRAZOLAM",
              "PREGABALIN", "CODEINE PHOSPHATE", "HYDROCHLOROTHIAZIDE", "LOSARTAN POTASSIUM"]
CLASSES = ["Penicillin-class Antibacterial [EPC],Penicillins [CS]", "Opioid Agonist [EPC]",
           "Benzodiazepine [EPC]", "HMG-CoA Reductase Inhibitor [EPC]", ""]
FORMS = [("TABLET", "ORAL", "TABLET"), ("CAPSULE", "ORAL", "CAPSULE"),
         ("SOLUTION", "ORAL", "mL"), ("INJECTION, SOLUTION", "INTRAVENOUS", "mL")]


def write_directory(folder: Path, products: int, seed: int = 7) -> tuple[Path, Path]:
    rnd = random.Random(seed)
    prod = folder / "product.txt"
    pack = folder / "package.txt"
    with open(prod, "w", encoding="cp1252", newline="") as fp, \
            open(pack, "w", encoding="cp1252", newline="") as fk:
        fp.write(PRODUCT_HEADER + "\r\n")
        fk.write(PACKAGE_HEADER + "\r\n")
        for i in range(products):
            form = i % 3
            if form == 0:      # 4-4-2
                labeler, code = f"{1000 + i // 9000:04d}", f"{i % 9000 + 1000:04d}"
            elif form == 1:    # 5-3-2
                labeler, code = f"{20000 + i // 900:05d}", f"{i % 900 + 100:03d}"
            else:              # 5-4-1
                labeler, code = f"{60000 + i // 9000:05d}", f"{i % 9000 + 1000:04d}"
            n_ing = 1 if rnd.random() < 0.8 else 2
            subs = rnd.sample(SUBSTANCES, n_ing)
            dea = rnd.choice(["", "", "", "", "", "", "CII", "CIII", "CIV", "CV"])
            dform, route, unit = rnd.choice(FORMS)
            pid = f"{labeler}-{code}_{i:08x}"
            fp.write("\t".join([
                pid, f"{labeler}-{code}", "HUMAN PRESCRIPTION DRUG", f"Brand{i:06d}", "",
                " and ".join(s.lower() for s in subs), dform, route, "20200101", "", "NDA",
                f"NDA{i:06d}", f"Labeler {labeler}", "; ".join(subs),
                "; ".join(str(rnd.choice([5, 10, 20, 250, 500])) for _ in subs),
                "; ".join("mg/1" for _ in subs), rnd.choice(CLASSES), dea, "N", "20271231",
            ]) + "\r\n")
            for k in range(2):
                pk = f"{k + 1:02d}" if form != 2 else f"{k + 1}"
                fk.write("\t".join([
                    pid, f"{labeler}-{code}", f"{labeler}-{code}-{pk}",
                    f"{30 * (k + 1)} {unit} in 1 BOTTLE ({labeler}-{code}-{pk})",
                    "20200101", "", "N", "N"]) + "\r\n")
    return prod, pack


def run(bench: BenchDatabase, log: Callable[[str], None], products: int = 70_000
        ) -> dict[str, float]:
    sf = db.session_factory(bench.engine)
    with tempfile.TemporaryDirectory() as tmp:
        prod, pack = write_directory(Path(tmp), products)
        log(f"ndc: importing {products * 2:,} packages")
        started = time.perf_counter()
        first = import_directory(sf, SYSTEM, prod, pack)
        took = time.perf_counter() - started
        log(f"ndc: {first.created:,} created, {first.updated:,} updated, "
            f"{len(first.problems)} problems in {took:.1f} s")
        started = time.perf_counter()
        again = import_directory(sf, SYSTEM, prod, pack)
        took2 = time.perf_counter() - started
        log(f"ndc: re-import {again.created:,} created, {again.updated:,} updated in "
            f"{took2:.1f} s")
    return {"ndc_import_s": round(took, 1), "ndc_reimport_s": round(took2, 1),
            "ndc_import_products": float(first.created)}
