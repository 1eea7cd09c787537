"""Request bodies (validated by Pydantic, described in the OpenAPI document)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, model_validator


def _nul_at(value: Any, path: str = "") -> str | None:
    """Where a NUL character hides in a JSON value (keys included), or None."""
    if isinstance(value, str):
        return path or "body" if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and "\x00" in key:
                return where
            found = _nul_at(item, where)
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _nul_at(item, f"{path}[{i}]")
            if found:
                return found
    return None


class Body(BaseModel):
    """Every request body: no NUL character anywhere. PostgreSQL's text and jsonb cannot store
    one, so it would fail at write time; refused here it is a plain 400 on both engines."""

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        where = _nul_at(data)
        if where:
            raise ValueError(f"{where} contains a NUL character (\\u0000)")
        return data


class Strict(Body):
    model_config = ConfigDict(extra="forbid")


class TenantIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    legal: dict[str, Any] | None = None


class StripeCredentialsIn(Strict):
    publishable_key: str = Field(max_length=255)
    secret_key: str = Field(max_length=255)
    webhook_secrets: list[str] = Field(min_length=1, max_length=5)
    account_id: str | None = Field(default=None, max_length=64)


class CustomerIn(Body):
    model_config = ConfigDict(extra="allow")
    email: EmailStr | None = None
    name: str | None = Field(default=None, max_length=200)
    address: dict[str, Any] | None = None
    language: Literal["fr", "en"] | None = None


class LineIn(Strict):
    sku: str | None = Field(default=None, max_length=100)
    description: str = Field(min_length=1, max_length=500)
    quantity: int = Field(default=1, ge=1, le=1_000_000)
    unit_amount: int = Field(ge=0, le=99_999_999_999)
    tax_rate: Decimal | None = Field(default=None, ge=0, lt=100, decimal_places=3)


class OrderIn(Strict):
    reference: str | None = Field(default=None, max_length=200)
    customer: CustomerIn | None = None
    currency: str = Field(min_length=3, max_length=3)
    lines: list[LineIn] = Field(min_length=1, max_length=500)
    metadata: dict[str, str] | None = Field(default=None, max_length=50)
    capture_method: Literal["automatic", "manual"] = "automatic"


class EndpointIn(Strict):
    url: str = Field(min_length=1, max_length=2048)
    api_key: str | None = Field(default=None, max_length=512)
    event_types: list[str] | None = Field(default=None, max_length=20)
    description: str | None = Field(default=None, max_length=500)


class EndpointPatch(Strict):
    url: str | None = Field(default=None, max_length=2048)
    api_key: str | None = Field(default=None, max_length=512)
    event_types: list[str] | None = Field(default=None, max_length=20)
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = None


class RotateSecretIn(Strict):
    grace_seconds: int = Field(default=86_400, ge=0, le=7 * 86_400)


class ReplayIn(Strict):
    since: int = Field(ge=0, description="Unix time: replay failures of deliveries since then")


class XsollaCredentialsIn(Strict):
    project_id: int | str
    api_key: str = Field(max_length=255)
    webhook_secret: str = Field(max_length=255)
    firebase_project_id: str = Field(max_length=30)
    return_url_allowlist: list[str] = Field(default_factory=list, max_length=20)
    merchant_id: int | str | None = None  # for reconciliation (merchant transaction reports)


class PriceIn(Strict):
    amount: int = Field(ge=1, le=99_999_999_999)
    currency: str = Field(min_length=3, max_length=3)


class CatalogItemIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    price: PriceIn
    status: Literal["available", "unavailable"] = "available"


class PaymentTokenIn(Body):
    """Extra fields (a ``uid`` or ``email`` sent by an old client) are ignored, never used."""

    model_config = ConfigDict(extra="ignore")
    sku: str = Field(min_length=1, max_length=100)
    quantity: int = Field(default=1, ge=1, le=100)
    return_url: str | None = Field(default=None, max_length=1000)
    mode: Literal["live", "test"] = "live"


class TenantPatchIn(Strict):
    """Seller details printed on invoices; ``legal`` is merged (null removes a field)."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    legal: dict[str, Any] | None = None


class RefundIn(Strict):
    amount: int | None = Field(default=None, ge=1)
    reason: Literal["duplicate", "fraudulent", "requested_by_customer"] | None = None


class CaptureIn(Strict):
    amount: int | None = Field(default=None, ge=1)
