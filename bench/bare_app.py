"""The ceiling: a bare Starlette endpoint that reads the body and answers 200."""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def ok(request: Request) -> Response:
    await request.body()
    return Response(b'{"received":true}', media_type="application/json")


app = Starlette(routes=[Route("/callbacks/v1.0/stripe/{tenant_id}", ok, methods=["POST"])])
