"""Authentication of callers that are not tenants: buyers signed in with Firebase.

The game client sends a Firebase ID token; caisse verifies it itself (``firebase``) instead of
trusting a uid or an email found in a request body, which is what the seed's sample function did.
"""
