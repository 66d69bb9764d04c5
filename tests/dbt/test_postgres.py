"""Content data versions and source checksums on PostgreSQL, through dbt-postgres."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from insync.adapters.dbt import DbtProject
from insync.core import EventStore

PROFILE = """
pg:
  target: dev
  outputs:
    dev:
      type: postgres
      host: {host}
      port: {port}
      user: {user}
      password: ""
      dbname: {database}
      schema: analytics
      threads: 2
"""
SOURCES = """
version: 2
sources:
  - name: raw
    schema: raw
    tables:
      - name: events
        meta: {insync: {data_version: content}}
models:
  - name: base
    config: {meta: {insync: {data_version: content}}}
"""
BASE = "select id, kind from {{ source('raw', 'events') }}"
CHILD = "select kind, count(*) as n from {{ ref('base') }} group by kind"


@pytest.fixture
def pg_project(tmp_path: Path, postgres_url: str) -> Iterator[tuple[DbtProject, sa.Engine]]:
    url = sa.make_url(postgres_url)
    root = tmp_path / "pg"
    (root / "models").mkdir(parents=True)
    (root / "dbt_project.yml").write_text(
        "name: pg\nversion: '1.0'\nprofile: pg\nmodels:\n  pg:\n    +materialized: table\n")
    (root / "profiles.yml").write_text(PROFILE.format(
        host=url.host, port=url.port or 5432, user=url.username, database=url.database))
    (root / "models" / "schema.yml").write_text(SOURCES)
    (root / "models" / "base.sql").write_text(BASE)
    (root / "models" / "child.sql").write_text(CHILD)
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text("create schema raw"))
        conn.execute(sa.text("create table raw.events (id int, kind text)"))
        conn.execute(sa.text("insert into raw.events values (1, 'a'), (2, 'b'), (3, 'a')"))
    store = EventStore(postgres_url)  # the shared store, in the warehouse's own database
    yield DbtProject(root, profiles_dir=root, store=store), engine
    store.close()
    engine.dispose()


def test_postgres_content_checksums_drive_rebuilds(pg_project: tuple[DbtProject, sa.Engine]) -> None:
    project, engine = pg_project
    root = Path(project._base_args[1])
    assert project.build().built == ["base", "child"]
    assert project.build().built == []

    # Same rows from different SQL: only base rebuilds, child stays in sync.
    (root / "models" / "base.sql").write_text(
        "select e.id, e.kind from {{ source('raw', 'events') }} as e where true")
    report = project.build()
    assert report.built == ["base"]
    assert report.invocations == 1

    # New source rows change the source checksum: the chain rebuilds, in two dbt calls
    # (base has a content version, so child waits to see whether base really changed).
    with engine.begin() as conn:
        conn.execute(sa.text("insert into raw.events values (4, 'b')"))
    report = project.build()
    assert report.built == ["base", "child"]
    assert report.invocations == 2
    assert "raw/events has a new data version" in report.outcome("base").reason
    with engine.connect() as conn:
        rows = conn.execute(sa.text("select kind, n from analytics.child order by kind")).all()
    assert [tuple(r) for r in rows] == [("a", 2), ("b", 2)]
