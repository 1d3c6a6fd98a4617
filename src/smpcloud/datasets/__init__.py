"""Public data the demo, the use cases and the paper's evaluation run on (rank 0).

Real datasets that ship with scikit-learn (diabetes, breast cancer) and synthetic but realistic
bank and insurer customers, split across simulated data owners (:mod:`.tables`); and the one
helper that turns a missing optional package into a clear error (:mod:`.extras`).

scikit-learn comes with the optional ``examples`` extra and is imported lazily, inside the
functions that need it: importing this package needs only numpy.
"""

from smpcloud.datasets.extras import (
    EXTRAS,
    MissingExtraError,
    check_extra,
    require_extra,
)
from smpcloud.datasets.tables import (
    BMI_RANGE,
    DIABETES_COLUMNS,
    FRAC_BITS,
    FloatArray,
    HorizontalSplit,
    IntArray,
    VerticalSplit,
    bank_insurer_customers,
    breast_cancer_hospitals,
    column_indices,
    diabetes_hospitals,
    diabetes_table,
    patient_bmis,
    split_rows,
)

__all__ = [
    "BMI_RANGE",
    "DIABETES_COLUMNS",
    "EXTRAS",
    "FRAC_BITS",
    "FloatArray",
    "HorizontalSplit",
    "IntArray",
    "MissingExtraError",
    "VerticalSplit",
    "bank_insurer_customers",
    "breast_cancer_hospitals",
    "check_extra",
    "column_indices",
    "diabetes_hospitals",
    "diabetes_table",
    "patient_bmis",
    "require_extra",
    "split_rows",
]
