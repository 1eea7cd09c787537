"""The per-process Xsolla pieces: one Firebase verifier (its certificate cache is shared by every
request) and one Xsolla API client, built on first use and closed with the app."""

from __future__ import annotations

import logging

from caisse.auth.firebase import FirebaseVerifier
from caisse.providers.xsolla.client import XsollaClient
from caisse.runtime import Runtime

log = logging.getLogger("caisse.xsolla")


class XsollaServices:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._verifier: FirebaseVerifier | None = None
        self._client: XsollaClient | None = None
        if rt.settings.firebase_emulator:
            # Built once per app, at start-up: the operator sees this in the first log lines.
            log.warning(
                "CAISSE_FIREBASE_EMULATOR is on: unsigned Firebase emulator tokens are accepted "
                "for test-environment players of demo-* Firebase projects (never for live); "
                "turn it off outside local development",
                extra={"action": "xsolla.firebase.emulator_on"},
            )

    @property
    def verifier(self) -> FirebaseVerifier:
        if self._verifier is None:
            settings = self._rt.settings
            self._verifier = FirebaseVerifier(
                settings.firebase_certs_url,
                clock=self._rt.clock,
                # Unsigned emulator tokens: only with CAISSE_FIREBASE_EMULATOR=true, and the
                # verifier still refuses them for live and for any project not named demo-*.
                allow_emulator=settings.firebase_emulator,
            )
        return self._verifier

    @property
    def client(self) -> XsollaClient:
        if self._client is None:
            self._client = XsollaClient(
                self._rt.settings.xsolla_api_base, timeout=self._rt.settings.xsolla_timeout
            )
        return self._client

    async def aclose(self) -> None:
        if self._verifier is not None:
            await self._verifier.aclose()
        if self._client is not None:
            await self._client.aclose()
        self._verifier = self._client = None
