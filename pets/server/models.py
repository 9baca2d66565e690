"""Pydantic models of the server's request and response bodies (what /openapi.json
publishes). The plan travels as the JSON form of the plan IR (:meth:`pets.plan.Plan.to_dict`),
validated by :meth:`pets.plan.Plan.from_dict` with its own size and depth limits."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

Scalar = Union[str, int, float, bool, None]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class DPModel(_Strict):
    """``pets.DP(epsilon, delta=0.0, noise="laplace")``."""

    form: Literal["dp"]
    epsilon: float
    delta: float = 0.0
    noise: Literal["laplace", "gaussian"] = "laplace"


class KAnonymityModel(_Strict):
    """``pets.KAnonymity(k, l=None, t=None, sensitive=None, ...)``."""

    form: Literal["kanon"]
    k: int
    l: float | None = None
    t: float | None = None
    sensitive: str | list[str] | None = None
    max_suppression: float = 0.0
    algorithm: Literal["optimal", "mondrian"] = "optimal"
    metric: str = "loss"
    l_kind: str = "distinct"


class HEModel(_Strict):
    """``pets.HE(...)``: federated contributions are not served over HTTP yet (refused)."""

    form: Literal["he"]
    key_bits: int = 3072
    dp: DPModel | None = None


ProtectionModel = Annotated[Union[DPModel, KAnonymityModel, HEModel], Field(discriminator="form")]


class QueryRequest(_Strict):
    """One request: the plan (JSON form of the plan IR) *or* SQL text, and the protection."""

    purpose: str = Field(description="the purpose the analyst's grant names")
    plan: dict[str, Any] | None = Field(
        default=None, description="Plan.to_dict(): dataset, filters, select, group_by, aggs")
    sql: str | None = Field(default=None, description="one SELECT statement (instead of plan)")
    protection: ProtectionModel
    ci_levels: list[float] = Field(
        default_factory=lambda: [0.95], max_length=16,
        description="confidence levels of the intervals a DP release returns")
    dummy: bool = Field(default=False, description="run on a fake table from the policy, spending nothing")
    rows: int | None = Field(default=None, ge=1, le=1_000_000,
                             description="with dummy: rows of the fake table (default 1000)")
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1,
                             description="with dummy: seed of the fake table")


class CostModel(BaseModel):
    epsilon: float
    delta: float
    rho: float = 0.0


class ColumnMeta(BaseModel):
    name: str
    dtype: str
    categories: list[Scalar] | None = None
    ordered: bool | None = None
    cells: Literal["tuple"] | None = None


class Table(BaseModel):
    """A table column by column; each column's dtype lets the client rebuild it."""

    columns: list[ColumnMeta]
    data: list[list[Union[Scalar, list[Scalar]]]]


FloatOrText = Union[float, str, None]  # ±inf travel as "inf" / "-inf", NaN as null


class ReleaseBody(BaseModel):
    type: Literal["release"]
    df: Table
    spent: CostModel
    audit_id: int
    scale: dict[str, FloatOrText]
    suppressed: int
    repeat_of: int | None
    audit_ids: dict[str, int] | None
    ci: dict[str, Table] = Field(description="intervals per requested level (repr of the level)")


class ExtractBody(BaseModel):
    type: Literal["extract"]
    df: Table
    transformation: dict[str, int | str] | str | None
    suppressed: int
    metrics: dict[str, FloatOrText]
    classes: int
    audit_id: int
    models: list[str]
    extracts_left: int | None
    spent: CostModel


class ExplanationBody(BaseModel):
    type: Literal["explanation"]
    allowed: bool
    cost: CostModel
    rule: str | None
    message: str | None
    column: str | None
    scale: dict[str, FloatOrText]
    ci_width: dict[str, FloatOrText]
    remaining: CostModel | None
    details: Table | None


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str = Field(description="the pets exception class: PolicyError, BudgetExceeded, ...")
    message: str
    rule: str | None = None
    column: str | None = None
    allowed: Any = None
    asked: CostModel | None = None
    left: CostModel | None = None
    retry_after: float | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class ColumnSummary(BaseModel):
    name: str
    type: str
    role: str | None
    grade: int | None
    allowed_forms: list[str]
    bounds: list[float] | None = None
    keys: list[Scalar] | None = None
    hierarchy: bool = False
    negative_list: bool = False


class GrantSummary(BaseModel):
    purpose: str
    granted: CostModel
    remaining: CostModel
    accounting: str


class DatasetSummary(BaseModel):
    name: str
    columns: list[ColumnSummary]
    privacy_unit: str | None
    settings: dict[str, Scalar | list[Scalar]]
    grades: dict[str, dict[str, Scalar | list[str]]]
    grants: list[GrantSummary]


class DatasetsBody(BaseModel):
    analyst: str
    datasets: list[DatasetSummary]


class RemainingBody(BaseModel):
    dataset: str
    purpose: str
    remaining: CostModel


class HistoryRecord(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: int
    ts: str
    analyst: str | None
    purpose: str | None
    dataset: str | None
    kind: str
    status: str
    rule: str | None = None
    column: str | None = None
    cost: CostModel | None = None
    repeat_of: int | None = None
    plan: dict[str, Any] | None = None
    protection: dict[str, Any] | None = None


class HistoryBody(BaseModel):
    records: list[HistoryRecord]


class DummyRequest(_Strict):
    dataset: str
    rows: int = Field(default=1000, ge=1, le=1_000_000)
    seed: int | None = None


class DummyBody(BaseModel):
    dataset: str
    df: Table


class Health(BaseModel):
    status: str
