"""Invoices: pure building blocks, no database.

``document`` holds the invoice as data and computes its net/tax/gross breakdown from the
tax-included amounts buyers pay; ``render`` draws the PDF (marked TEST on every page in the test
environment); ``facturx`` builds the EN 16931 CII XML and embeds it into a PDF/A-3 for live
documents. Numbering, storage and issuing jobs live elsewhere and call into these.
"""
