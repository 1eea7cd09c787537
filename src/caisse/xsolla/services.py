"""The per-process Xsolla pieces: one Firebase verifier (its certificate cache is shared by every
request) and one Xsolla API client, built on first use and closed with the app."""

from __future__ import annotations

from caisse.auth.firebase import FirebaseVerifier
from caisse.providers.xsolla.client import XsollaClient
from caisse.runtime import Runtime


class XsollaServices:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._verifier: FirebaseVerifier | None = None
        self._client: XsollaClient | None = None

    @property
    def verifier(self) -> FirebaseVerifier:
        if self._verifier is None:
            settings = self._rt.settings
            self._verifier = FirebaseVerifier(
                settings.firebase_certs_url,
                clock=self._rt.clock,
                # Unsigned emulator tokens: only with CAISSE_FIREBASE_EMULATOR=true, and the
                # verifier still refuses them for any project not named demo-*.
                allow_emulator=settings.firebase_emulator,
            )
        return self._verifier

    @property
    def client(self) -> XsollaClient:
        if self._client is None:
            self._client = XsollaClient(self._rt.settings.xsolla_api_base)
        return self._client

    async def aclose(self) -> None:
        if self._verifier is not None:
            await self._verifier.aclose()
        if self._client is not None:
            await self._client.aclose()
        self._verifier = self._client = None
