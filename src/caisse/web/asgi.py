"""The ASGI application for uvicorn workers: ``uvicorn caisse.web.asgi:app``.

Everything imported and built here lives as long as the process, so it is moved out of the
cyclic garbage collector's sight (``gc.freeze``): a full collection then walks only what
requests allocate, instead of every module, route and table object too (under ingest load those
walks stalled the event loop for tens of milliseconds at p99). Only this entry point does it;
tests build many apps in one process and must not pin their garbage.
"""

import gc

from caisse.web.app import create_app

app = create_app()
gc.freeze()
