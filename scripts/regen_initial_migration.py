"""Regenerate the single initial migration from the models (pre-1.0 only: no deployed schema).

Once a release is out, new changes get their own revisions (``alembic revision --autogenerate``)
and this script is retired; see docs/dev/migrations.md.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from alembic import command

from caisse.storage.migrate import MIGRATIONS, alembic_config

versions = MIGRATIONS / "versions"
for old in versions.glob("0001_*.py"):
    old.unlink()
with tempfile.TemporaryDirectory() as tmp:
    cfg = alembic_config(f"sqlite:///{Path(tmp) / 'gen.db'}")
    command.revision(cfg, message="initial schema", autogenerate=True, rev_id="0001")
new = next(versions.glob("0001_*.py"))
text = new.read_text().replace("Create Date:", "Create Date (regenerated):")
text = "\n".join(line.rstrip() for line in text.splitlines()) + "\n"
new.write_text(text)
bin_dir = Path(sys.executable).parent
subprocess.run([bin_dir / "ruff", "check", "--fix", "-q", str(new)], check=False)
subprocess.run([bin_dir / "ruff", "format", "-q", str(new)], check=False)
print(new)
