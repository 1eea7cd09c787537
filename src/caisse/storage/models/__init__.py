"""All tables, one module per capability; import them as ``from caisse.storage import models
as m`` and use ``m.Order``, ``m.Endpoint``… Adding a module here is what puts its tables in the
metadata that migrations are generated from."""

from caisse.storage.models.catalog import *  # noqa: F403
from caisse.storage.models.connect import *  # noqa: F403
from caisse.storage.models.core import *  # noqa: F403
from caisse.storage.models.core import Base as Base
from caisse.storage.models.delivery import *  # noqa: F403
from caisse.storage.models.extranet import *  # noqa: F403
from caisse.storage.models.invoices import *  # noqa: F403
from caisse.storage.models.reconcile import *  # noqa: F403
from caisse.storage.models.xsolla import *  # noqa: F403
