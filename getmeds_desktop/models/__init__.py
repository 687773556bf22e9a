"""SQLAlchemy 2 ORM models, one module per area. No Qt here."""

from .audit import AuditEntry, ChangeTombstone, RequestLog
from .base import Base, table_of, utcnow
from .catalog import Category, Product, ProductDrugClass, ProductIngredient, Supplier
from .enums import (
    AllergyStatus,
    LotStatus,
    MovementKind,
    OverrideReason,
    PaperSize,
    Role,
    RxStatus,
    Schedule,
    Severity,
    Sex,
    StocktakeScope,
    StocktakeStatus,
    StorageCondition,
    WarningKind,
)
from .inventory import DeaInventory, DeaInventoryLine
from .legacy import LegacyDispense, LegacyPrescription
from .patients import Patient, PatientAllergy, PatientCondition, PatientFeedback
from .prescribers import Prescriber
from .prescriptions import (
    RX_NUMBER_START,
    Dispense,
    DispenseWarning,
    LabelPrint,
    Prescription,
    PrescriptionTransfer,
)
from .settings import AppSettings, DbSecurity, KnowledgeImport
from .staff import LoginThrottle, Staff, StaffCredential
from .stock import (
    ControlledRegisterEntry,
    DeaFormRecord,
    ProductStock,
    RecallNotice,
    StockLot,
    StockMovement,
    Stocktake,
    StocktakeLine,
)

__all__ = [
    "RX_NUMBER_START",
    "AllergyStatus",
    "AppSettings",
    "AuditEntry",
    "Base",
    "Category",
    "ChangeTombstone",
    "ControlledRegisterEntry",
    "DbSecurity",
    "DeaFormRecord",
    "DeaInventory",
    "DeaInventoryLine",
    "Dispense",
    "DispenseWarning",
    "KnowledgeImport",
    "LabelPrint",
    "LegacyDispense",
    "LegacyPrescription",
    "LoginThrottle",
    "LotStatus",
    "MovementKind",
    "OverrideReason",
    "PaperSize",
    "Patient",
    "PatientAllergy",
    "PatientCondition",
    "PatientFeedback",
    "Prescriber",
    "Prescription",
    "PrescriptionTransfer",
    "Product",
    "ProductDrugClass",
    "ProductIngredient",
    "ProductStock",
    "RecallNotice",
    "RequestLog",
    "Role",
    "RxStatus",
    "Schedule",
    "Severity",
    "Sex",
    "Staff",
    "StaffCredential",
    "StockLot",
    "StockMovement",
    "Stocktake",
    "StocktakeLine",
    "StocktakeScope",
    "StocktakeStatus",
    "StorageCondition",
    "Supplier",
    "WarningKind",
    "table_of",
    "utcnow",
]
