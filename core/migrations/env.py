"""Alembic environment: migrations run on the connection insync hands over (already locked)."""

from alembic import context
from insync.core._schema import VERSION_TABLE

connection = context.config.attributes["connection"]
context.configure(connection=connection, version_table=VERSION_TABLE, transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
