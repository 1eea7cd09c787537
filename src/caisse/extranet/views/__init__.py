"""One module per extranet section; each exposes an ``APIRouter`` named ``router``."""
