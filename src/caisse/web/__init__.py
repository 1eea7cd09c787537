"""HTTP API: translates HTTP ⇄ services, nothing more."""
