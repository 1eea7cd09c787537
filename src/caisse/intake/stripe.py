"""Stripe ingest: verify on the raw bytes, bind to the tenant, store once, then acknowledge.

The order of checks follows dj-stripe's (missing header → 400 before any lookup) and binds an
event to its tenant three ways: the URL's tenant ↔ that tenant's secrets ↔ the event's
``livemode`` (and ``account`` when the tenant is a connected account). The environment whose
secret verifies the signature must be the one ``livemode`` names, so a test event can never
enter the live world, nor one tenant's event another's.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from caisse import ids
from caisse.clock import Clock, from_timestamp
from caisse.config import Secret
from caisse.errors import NotFound, SignatureInvalid
from caisse.intake.writer import IngestWriter
from caisse.providers.stripe import envelope, signature
from caisse.storage.db import Database
from caisse.tenants.credentials import StripeSecretCache

log = logging.getLogger("caisse.intake")

MAX_BODY = 1024 * 1024
CONNECT_ROUTE = "connect"
"""``/callbacks/v1.0/stripe/connect``: the platform's Connect endpoint (no tenant is named so)."""
KEPT_HEADERS = ("user-agent", "content-type", "stripe-signature", "x-forwarded-for")


@dataclass(frozen=True, slots=True)
class Receipt:
    event_id: str
    type: str
    environment: str


class ConnectRouting:
    """The platform's Connect endpoint: one secret for every connected account's events, each
    routed to the tenant its ``account`` is connected to, in the environment ``livemode``
    names."""

    def __init__(self, db: Database, secrets: Sequence[Secret]) -> None:
        self._db = db
        self.secrets = tuple(s.reveal() for s in secrets)

    def tenant_for(self, account: str, environment: str) -> str | None:
        from caisse.tenants.connect import connected_tenant

        with self._db.read() as s:
            return connected_tenant(s, account, environment)


class StripeIngest:
    def __init__(
        self,
        secrets: StripeSecretCache,
        writer: IngestWriter,
        clock: Clock,
        *,
        connect: ConnectRouting | None = None,
    ) -> None:
        self._secrets = secrets
        self._writer = writer
        self._clock = clock
        self._connect = connect

    async def receive(
        self,
        tenant_id: str,
        body: bytes,
        header: str | None,
        *,
        headers: dict[str, str] | None = None,
        remote_addr: str | None = None,
    ) -> Receipt:
        if not header:
            raise SignatureInvalid(signature.GENERIC_MESSAGE)
        if len(body) > MAX_BODY:
            from caisse.errors import PayloadTooLarge

            raise PayloadTooLarge("The event body is larger than 1 MiB")
        if tenant_id == CONNECT_ROUTE:
            return await self._receive_connect(body, header, headers, remote_addr)
        known = await self._secrets.aget(tenant_id)
        if not known.tenant_exists:
            raise NotFound("No such tenant")
        received = self._clock.now()
        now = int(received.timestamp())
        environment = self._verify(known.webhook_secrets, body, header, now)
        if environment is None:
            # Maybe a secret was just added (in another process): look once more, then refuse.
            known = await self._secrets.aget(tenant_id, refresh=True)
            environment = self._verify(known.webhook_secrets, body, header, now)
        if environment is None:
            log.info(
                "stripe signature refused",
                extra={"action": "intake.signature_refused", "tenant_id": tenant_id},
            )
            raise SignatureInvalid(signature.GENERIC_MESSAGE)

        event = envelope.read(body)
        named = "live" if event.livemode else "test"
        if named != environment:
            # The environment is the one livemode names, verified with that environment's own
            # secrets (a merchant may have saved one secret in both): never the other world's.
            secrets = {named: known.webhook_secrets.get(named, ())}
            if self._verify(secrets, body, header, now) is None:
                raise SignatureInvalid(signature.GENERIC_MESSAGE)
            environment = named
        expected_account = known.account_ids.get(environment)
        account = event.account
        if account is not None and expected_account and account != expected_account:
            raise SignatureInvalid(signature.GENERIC_MESSAGE)

        row = event_row(
            tenant_id,
            environment,
            event,
            body,
            now=received,
            headers=headers,
            remote_addr=remote_addr,
        )
        await self._writer.submit(row)
        return Receipt(event.id, event.type, environment)

    async def _receive_connect(
        self, body: bytes, header: str, headers: dict[str, str] | None, remote_addr: str | None
    ) -> Receipt:
        if self._connect is None or not self._connect.secrets:
            raise NotFound("No Stripe Connect endpoint is configured")
        now = int(self._clock.now().timestamp())
        signature.verify(body, header, self._connect.secrets, now=now)
        event = envelope.read(body)
        environment = "live" if event.livemode else "test"
        account = event.account
        tenant_id = self._connect.tenant_for(account, environment) if account else None
        if tenant_id is None:
            # Not (or no longer) connected here: acknowledged so Stripe stops, nothing stored.
            log.info(
                "connect event for no tenant",
                extra={"action": "intake.connect_unrouted", "account": account},
            )
            return Receipt(event.id, event.type, environment)
        row = event_row(
            tenant_id,
            environment,
            event,
            body,
            now=self._clock.now(),
            headers=headers,
            remote_addr=remote_addr,
        )
        await self._writer.submit(row)
        return Receipt(event.id, event.type, environment)

    @staticmethod
    def _verify(
        secrets: dict[str, tuple[str, ...]], body: bytes, header: str, now: int
    ) -> str | None:
        for env in ("live", "test"):
            keys = secrets.get(env)
            if not keys:
                continue
            try:
                signature.verify(body, header, keys, now=now)
            except SignatureInvalid:
                continue
            return env
        return None


def event_row(
    tenant_id: str,
    environment: str,
    event: envelope.Envelope,
    body: bytes,
    *,
    now: dt.datetime,
    headers: dict[str, str] | None = None,
    remote_addr: str | None = None,
) -> dict[str, Any]:
    """The ``inbound_events`` row of a verified event (also its own processing job).

    The body is stored as received: compressing 3 KB costs more than the rest of the
    acknowledgement path, so it is done later, off that path, when the event is processed
    (``processing.apply_event``).
    """
    kept = {k: v for k, v in (headers or {}).items() if k.lower() in KEPT_HEADERS}
    return {
        "id": ids.new_id("event"),
        "tenant_id": tenant_id,
        "environment": environment,
        "provider": "stripe",
        "provider_event_id": event.id,
        "type": event.type,
        "provider_account_id": event.account,
        "provider_created_at": None if event.created is None else from_timestamp(event.created),
        "body": body,
        "body_encoding": "identity",
        "headers": kept,
        "remote_addr": remote_addr,
        "status": "pending",
        "attempts": 0,
        "run_at": now,
        "received_at": now,
    }
