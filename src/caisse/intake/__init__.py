"""Inbound provider webhooks: verify, store once, acknowledge; process later from a job."""
