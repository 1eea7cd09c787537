"""Tenants (merchants), their API keys and their provider credentials."""
