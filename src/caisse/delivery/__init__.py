"""Partner webhook delivery: Standard Webhooks signing, retry policy, SSRF guard and the HTTP
sender. The modules here are pure building blocks (no database); the worker composes them."""
