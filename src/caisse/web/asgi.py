"""The ASGI application for uvicorn workers: ``uvicorn caisse.web.asgi:app``."""

from caisse.web.app import create_app

app = create_app()
