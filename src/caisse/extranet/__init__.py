"""The merchant extranet: server-rendered pages under ``/ui`` (see ``routes.build``)."""
