"""The value sets live in :mod:`getmeds_desktop.enums` (importable without
SQLAlchemy, so the GUI can start quickly); re-exported here for the models."""

from ..enums import (
    AllergyStatus,
    Counseling,
    DeaForm,
    FillStatus,
    LossType,
    LotStatus,
    MovementKind,
    OverrideReason,
    PaperSize,
    ReturnReason,
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

__all__ = ["AllergyStatus", "Counseling", "DeaForm", "FillStatus", "LossType", "LotStatus",
           "MovementKind", "OverrideReason", "PaperSize", "ReturnReason", "Role", "RxStatus",
           "Schedule", "Severity", "Sex", "StocktakeScope", "StocktakeStatus",
           "StorageCondition", "WarningKind"]
