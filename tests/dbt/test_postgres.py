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


MICROBATCH_SOURCES = """
version: 2
sources:
  - name: raw
    schema: raw
    tables:
      - name: events
        config: {event_time: happened_at}
      - name: kinds
"""


def test_postgres_microbatch_batches_and_undeclared_sources(
    pg_project: tuple[DbtProject, sa.Engine],
) -> None:
    """Per-window checksums and whole-table checksums of undeclared sources, in PostgreSQL SQL."""
    import json

    import pendulum

    project, engine = pg_project
    root = Path(project._base_args[1])
    days = [pendulum.now("UTC").start_of("day").subtract(days=n).format("YYYY-MM-DD")
            for n in (3, 2, 1)]
    with engine.begin() as conn:
        conn.execute(sa.text("create table raw.kinds (kind text, label text)"))
        conn.execute(sa.text("insert into raw.kinds values ('a', 'alpha'), ('b', 'beta')"))
        conn.execute(sa.text("alter table raw.events add column happened_at timestamp"))
        for i, day in enumerate(days):
            conn.execute(sa.text(f"update raw.events set happened_at = timestamp '{day} 10:00' "
                                 f"where id = {i + 1}"))
    (root / "models" / "schema.yml").write_text(MICROBATCH_SOURCES)
    (root / "models" / "base.sql").write_text(
        "{{ config(materialized='incremental', incremental_strategy='microbatch', "
        f"event_time='happened_at', batch_size='day', begin='{days[0]}', unique_key='id') }}}}\n"
        # (no alias on the source: dbt renders a filtered one as an aliased subquery)
        "select id, happened_at, label from {{ source('raw', 'events') }} "
        "join {{ source('raw', 'kinds') }} using (kind)")
    (root / "models" / "child.sql").write_text(
        "select label, count(*) as n from {{ ref('base') }} group by label")

    def batches() -> list[str]:
        results = json.loads((root / "target" / "run_results.json").read_text())
        found = [r for r in results["results"] if r["unique_id"] == "model.pg.base"]
        return [pendulum.parse(b[0]).format("YYYY-MM-DD")
                for b in found[0]["batch_results"]["successful"]] if found else []

    assert project.build().built == ["base", "child"]
    assert batches() == days
    assert project.build().built == []
    with engine.begin() as conn:
        conn.execute(sa.text("update raw.events set kind = 'a' where id = 2"))
    report = project.build()
    reason = report.outcome("base").reason
    assert reason.startswith(f"batches {days[1]}: ")
    assert reason.endswith(f"/raw/events[{days[1]}] has a new data version")
    assert batches() == [days[1]]
    # raw.kinds has no event_time and no declaration: checksummed whole, read by every batch.
    with engine.begin() as conn:
        conn.execute(sa.text("update raw.kinds set label = 'ALPHA' where kind = 'a'"))
    report = project.build()
    assert report.outcome("base").reason.endswith("/raw/kinds has a new data version")
    assert batches() == days
    with engine.connect() as conn:
        rows = conn.execute(sa.text("select label, n from analytics.child order by label")).all()
    assert [tuple(r) for r in rows] == [("ALPHA", 3)]
