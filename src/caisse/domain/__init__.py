"""The pure domain: orders, payments, refunds, disputes and their state machine.

Imports only the standard library and caisse's own ``errors``, ``money``, ``clock`` and ``ids``:
no web framework, no SQL, no provider JSON (checked by ``tests/unit/domain/test_purity.py``).
"""
