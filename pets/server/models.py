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
    gs_factor: float | None = None
    aggregation: str | None = None
    search: str | None = None
    max_nodes: int | None = None
    recoding: str | None = None
    t_distance: str | None = None


class HEModel(_Strict):
    """``pets.HE(...)``: a federated contribution, served by the ``/v1/he/...`` endpoints
    (refused by ``/v1/explain`` and ``/v1/release``)."""

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
    dummy: bool = False
    plan: dict[str, Any] | None = Field(
        default=None, description="the plan the server parsed, when the request sent SQL text")


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
    plan: dict[str, Any] | None = Field(
        default=None, description="the plan the server parsed, when the request sent SQL text")


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


# -- federation over HTTP (pets/server/federation.py) -----------------------------------

FedId = Annotated[str, Field(min_length=1, max_length=64)]
ReleaseId = Annotated[str, Field(min_length=16, max_length=128)]
BigInt = Annotated[str, Field(min_length=1, max_length=4000,
                              description="a non-negative integer in decimal")]


class HEPrepareRequest(_Strict):
    """A member's checks of a federated release (``explain``: nothing is audited)."""

    purpose: str
    federation: FedId
    plan: dict[str, Any] = Field(description="Plan.to_dict()")
    protection: HEModel
    explain: bool = False


class HEContributeRequest(_Strict):
    purpose: str
    federation: FedId
    release: ReleaseId = Field(description="a fresh random id the client draws for this release")
    structure: str = Field(max_length=64, description="the structure digest every member's "
                                                      "/v1/he/prepare returned")
    plan: dict[str, Any] = Field(description="Plan.to_dict()")
    protection: HEModel


class SignedContribution(_Strict):
    """One member's contribution as it signed it."""

    member: FedId
    plan: str = Field(max_length=64, description="SHA-256 of the plan's canonical JSON")
    protection: dict[str, Any]
    ciphertexts: list[BigInt] = Field(max_length=10_000)
    signature: str = Field(max_length=128, description="Ed25519, hex")


class HEDecryptRequest(_Strict):
    purpose: str
    federation: FedId
    release: ReleaseId
    contributions: list[SignedContribution] = Field(min_length=1, max_length=64)
    aggregate: list[BigInt] = Field(max_length=10_000)


class HEFinishRequest(_Strict):
    purpose: str
    federation: FedId
    plan: dict[str, Any]
    protection: HEModel
    totals: list[int] = Field(max_length=1_000_000)
    ci_levels: list[float] = Field(default_factory=lambda: [0.95], max_length=16)


class MemberInfo(BaseModel):
    url: str
    verify_key: str


class FederationInfo(BaseModel):
    id: str
    member: str
    threshold: int
    bits: int
    n: str
    key: dict[str, Any] = Field(description="the public ThresholdKey (to_dict)")
    members: dict[str, MemberInfo]


class IdentityBody(BaseModel):
    verify_key: str = Field(description="raw Ed25519 public key, hex")
    federations: list[FederationInfo]


class HEPrepareBody(BaseModel):
    member: str
    federation: str
    allowed: bool
    rule: str | None
    message: str | None
    error: str | None
    column: str | None
    cost: CostModel | None
    structure: str | None
    values: int | None


class HEContributionBody(BaseModel):
    federation: str
    release: str
    member: str
    plan: str
    protection: dict[str, Any]
    ciphertexts: list[str]
    signature: str
    audit_id: int
    spent: CostModel


class PartialModel(BaseModel):
    index: int
    value: str
    ciphertext: str
    n: str
    proof: dict[str, str] | None = None


class HEDecryptBody(BaseModel):
    federation: str
    release: str
    member: str
    audit_id: int
    partials: list[PartialModel]
