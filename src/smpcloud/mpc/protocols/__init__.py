"""MPC protocols written against :class:`~smpcloud.mpc.runtime.Party`: secure sum, statistics."""

from smpcloud.mpc.protocols.statistics import (
    dot_product,
    mean,
    secure_sum,
    standard_deviation,
    sum_of_squares,
    variance,
    weighted_mean,
)

__all__ = [
    "dot_product",
    "mean",
    "secure_sum",
    "standard_deviation",
    "sum_of_squares",
    "variance",
    "weighted_mean",
]
