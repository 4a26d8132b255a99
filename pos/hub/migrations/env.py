"""Alembic environment of the hub: runs on the connection :meth:`Database.migrate` passes
in (inside its transaction and lock); never from an ini file."""

from __future__ import annotations

from alembic import context

from pos.hub.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata,
                  render_as_batch=connection.dialect.name == "sqlite",
                  transaction_per_migration=False)
context.run_migrations()
