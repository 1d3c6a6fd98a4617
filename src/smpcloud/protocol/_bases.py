"""The two pydantic bases of the wire schemas: strict request bodies, lenient responses."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Schema(BaseModel):
    """Input schemas (and TaskEncoding): unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Out(BaseModel):
    """Response schemas: unknown fields are ignored, so older clients read newer servers."""

    model_config = ConfigDict(extra="ignore", frozen=True)


__all__ = ["Out", "Schema"]
