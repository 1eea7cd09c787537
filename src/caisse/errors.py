"""The one exception tree of caisse. Services raise these; only ``caisse.web.errors`` maps them
to HTTP status codes, and nothing above an adapter catches a third-party exception type.

::

    CaisseError                     code
    ├── InvalidRequest              invalid_request       bad input (param names the field)
    │   └── PayloadTooLarge         payload_too_large
    ├── AuthenticationError         authentication_failed missing or wrong credentials
    ├── PermissionDenied            permission_denied     credentials valid, action not allowed
    ├── NotFound                    not_found
    ├── Conflict                    conflict
    │   ├── InvalidTransition       invalid_transition    a state machine refused a move
    │   ├── DuplicateEvent          duplicate_event
    │   └── IdempotencyConflict     idempotency_conflict  same key, different request
    ├── ProviderError               provider_error        a payment provider misbehaved
    │   ├── SignatureInvalid        signature_invalid     an inbound webhook failed verification
    │   ├── ProviderRejected        provider_rejected     the provider refused our call (4xx)
    │   ├── ProviderUnavailable     provider_unavailable  provider down (5xx, network)
    │   └── ProviderTimeout         provider_timeout
    ├── DeliveryError               delivery_error        a partner endpoint could not be reached
    │   └── UnsafeTarget            unsafe_target         the target resolves to a forbidden address
    └── StorageUnavailable          storage_unavailable   the database cannot be reached
"""

from __future__ import annotations


class CaisseError(Exception):
    """Base of every error caisse raises on purpose."""

    code = "caisse_error"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidRequest(CaisseError):
    code = "invalid_request"


class PayloadTooLarge(InvalidRequest):
    code = "payload_too_large"


class AuthenticationError(CaisseError):
    code = "authentication_failed"


class PermissionDenied(CaisseError):
    code = "permission_denied"


class NotFound(CaisseError):
    code = "not_found"


class Conflict(CaisseError):
    code = "conflict"


class InvalidTransition(Conflict):
    code = "invalid_transition"


class DuplicateEvent(Conflict):
    code = "duplicate_event"


class IdempotencyConflict(Conflict):
    code = "idempotency_conflict"


class ProviderError(CaisseError):
    code = "provider_error"


class SignatureInvalid(ProviderError):
    code = "signature_invalid"


class ProviderRejected(ProviderError):
    code = "provider_rejected"


class ProviderUnavailable(ProviderError):
    code = "provider_unavailable"


class ProviderTimeout(ProviderError):
    code = "provider_timeout"


class DeliveryError(CaisseError):
    code = "delivery_error"


class UnsafeTarget(DeliveryError):
    code = "unsafe_target"


class StorageUnavailable(CaisseError):
    code = "storage_unavailable"
