"""The Xsolla adapter: Pay Station token and order API client, webhook signature policy, webhook
parsing into typed messages, and a documentation-faithful Xsolla simulator for tests and demos.

Modules: ``signature`` (``Authorization: Signature sha1(body + secret)``), ``webhooks`` (typed
notifications and Xsolla's error answers), ``client`` (Store admin API over httpx) and
``simulator`` (a Starlette app playing Xsolla, plus a signed webhook sender).
"""
