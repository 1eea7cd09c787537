"""Mail: invoice e-mails composed from templates, sent over SMTP.

``compose`` builds the message (text and HTML alternatives, the PDF attached) and needs no
network; ``smtp`` parses ``CAISSE_SMTP_URL`` and sends with aiosmtplib. Choosing whether a
message may reach a real customer (live) or must go to a test sink is the caller's job.
"""
