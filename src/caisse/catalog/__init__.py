"""The tenant's catalogue of SKUs, per environment: what a player may buy, and at what price."""
