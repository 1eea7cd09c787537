"""Payment provider adapters: each turns a provider's API and webhooks into domain commands."""
