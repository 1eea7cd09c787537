"""Xsolla Pay Station for Firebase-authenticated players (seed ``003_…``).

``policy`` holds the pure rules (return-URL allow-list, the player-facing order status),
``players`` the player endpoints' use cases (payment token, order status, entitlements),
``entitlements`` what was granted and revoked, and ``webhooks`` the synchronous handling of
Xsolla's signed notifications. The Xsolla wire format lives in ``caisse.providers.xsolla``.
"""
