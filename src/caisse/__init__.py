"""caisse: a self-hosted payment events hub for Stripe and Xsolla."""

__version__ = "0.1.0"

__all__ = ["__version__"]
