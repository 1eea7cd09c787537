"""Calls to the Stripe API, through the official SDK, for one merchant's secret key.

The API version is pinned (``API_VERSION``) so payloads keep one shape whatever the merchant's
account default is. The base URL comes from ``CAISSE_STRIPE_API_BASE`` so tests can use
localstripe. SDK exceptions are translated here, and nowhere else, into caisse's own tree
(a closed allow-list: anything not recognised is ``ProviderUnavailable``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import stripe
import stripe.oauth_error

from caisse.errors import (
    AuthenticationError,
    InvalidRequest,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
)

API_VERSION = "2024-06-20"
TIMEOUT_SECONDS = 20


@dataclass(frozen=True, slots=True)
class CreatedPayment:
    id: str
    client_secret: str
    status: str
    raw: dict[str, Any]


@contextmanager
def translate_errors() -> Iterator[None]:
    """Map SDK errors to caisse errors without echoing keys (the SDK message may quote them)."""
    try:
        yield
    except stripe.AuthenticationError as exc:
        raise AuthenticationError("Stripe refused the secret key") from exc
    except stripe.PermissionError as exc:
        raise ProviderRejected("The Stripe key lacks permission for this call") from exc
    except stripe.RateLimitError as exc:
        raise ProviderUnavailable("Stripe rate limit reached; try again shortly") from exc
    except stripe.CardError as exc:
        raise ProviderRejected(f"Stripe declined: {exc.code or 'card_error'}") from exc
    except stripe.IdempotencyError as exc:
        raise InvalidRequest("Idempotency-Key reused with different parameters") from exc
    except stripe.InvalidRequestError as exc:
        raise ProviderRejected(
            f"Stripe rejected the request: {exc.code or 'invalid_request'}", param=exc.param
        ) from exc
    except stripe.oauth_error.OAuthError as exc:
        # invalid_grant (code used, expired or foreign), invalid_client, invalid_request…
        raise InvalidRequest(f"Stripe Connect refused: {exc.code or 'oauth_error'}") from exc
    except stripe.APIConnectionError as exc:
        if "timed out" in str(exc).lower() or "timeout" in str(exc).lower():
            raise ProviderTimeout("Stripe did not answer in time") from exc
        raise ProviderUnavailable("Stripe could not be reached") from exc
    except stripe.StripeError as exc:
        raise ProviderUnavailable("Stripe answered with an error") from exc


class StripeGateway:
    """One merchant's view of Stripe (secret key, optional connected account)."""

    def __init__(
        self,
        secret_key: str,
        *,
        api_base: str | None = None,
        account: str | None = None,
        client_id: str | None = None,
        http_client: stripe.HTTPClient | None = None,
    ) -> None:
        bases: dict[str, str] = {}
        if api_base:
            bases = {"api": api_base.rstrip("/"), "connect": api_base.rstrip("/")}
        self._client = stripe.StripeClient(
            secret_key,
            stripe_account=account,
            client_id=client_id,
            stripe_version=API_VERSION,
            base_addresses=bases,  # type: ignore[arg-type]
            max_network_retries=2,
            http_client=http_client
            or stripe.HTTPXClient(timeout=TIMEOUT_SECONDS, allow_sync_methods=True),
        )

    def create_payment_intent(
        self,
        *,
        amount: int,
        currency: str,
        metadata: dict[str, str],
        idempotency_key: str,
        receipt_email: str | None = None,
        capture_method: str = "automatic",
    ) -> CreatedPayment:
        """Since API version 2023-08-16 Stripe enables automatic payment methods by default,
        so none are named here; the merchant picks them in the Stripe dashboard."""
        params: dict[str, Any] = {
            "amount": amount,
            "currency": currency,
            "metadata": metadata,
            "capture_method": capture_method,
        }
        if receipt_email:
            params["receipt_email"] = receipt_email
        with translate_errors():
            pi = self._client.v1.payment_intents.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key},
            )
        return CreatedPayment(pi.id, pi.client_secret or "", pi.status, pi.to_dict())

    def retrieve_payment_intent(self, payment_intent_id: str) -> dict[str, Any]:
        with translate_errors():
            return self._client.v1.payment_intents.retrieve(payment_intent_id).to_dict()

    def retrieve_account(self) -> dict[str, Any]:
        with translate_errors():
            return self._client.v1.accounts.retrieve_current().to_dict()

    def retrieve_charge(self, charge_id: str) -> dict[str, Any]:
        with translate_errors():
            return self._client.v1.charges.retrieve(charge_id).to_dict()

    def create_refund(
        self,
        *,
        payment_intent: str,
        idempotency_key: str,
        amount: int | None = None,
        reason: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Refund (part of) a PaymentIntent; ``amount=None`` refunds what is left."""
        params: dict[str, Any] = {"payment_intent": payment_intent}
        if amount is not None:
            params["amount"] = amount
        if reason:
            params["reason"] = reason
        if metadata:
            params["metadata"] = metadata
        with translate_errors():
            return self._client.v1.refunds.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key},
            ).to_dict()

    def capture_payment_intent(
        self, payment_intent_id: str, *, idempotency_key: str, amount: int | None = None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if amount is not None:
            params["amount_to_capture"] = amount
        with translate_errors():
            return self._client.v1.payment_intents.capture(
                payment_intent_id,
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key},
            ).to_dict()

    def cancel_payment_intent(
        self, payment_intent_id: str, *, idempotency_key: str
    ) -> dict[str, Any]:
        with translate_errors():
            return self._client.v1.payment_intents.cancel(
                payment_intent_id, options={"idempotency_key": idempotency_key}
            ).to_dict()

    def oauth_authorize_url(self, *, state: str, redirect_uri: str, scope: str) -> str:
        """The "Connect with Stripe" address (the client id is given to the constructor)."""
        with translate_errors():
            return self._client.oauth.authorize_url(
                params={"state": state, "redirect_uri": redirect_uri, "scope": scope}
            )

    def oauth_token(self, code: str) -> dict[str, Any]:
        """Exchange an authorization code for the connected account (``stripe_user_id``);
        authenticated with the platform's secret key this gateway was built with."""
        with translate_errors():
            token = self._client.oauth.token(
                params={"grant_type": "authorization_code", "code": code}
            )
        return token.to_dict()

    def list_events_page(
        self, *, created_gt: int, starting_after: str | None = None, limit: int = 100
    ) -> tuple[list[dict[str, Any]], bool]:
        """One page of events (newest first, as Stripe lists them) and whether more follow:
        the caller pages with ``starting_after`` so that each request can be rate-limited."""
        params: dict[str, Any] = {"created": {"gt": created_gt}, "limit": limit}
        if starting_after:
            params["starting_after"] = starting_after
        with translate_errors():
            page = self._client.v1.events.list(params=params)  # type: ignore[arg-type]
            return [e.to_dict() for e in page.data], bool(page.has_more)
