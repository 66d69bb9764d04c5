"""One copy of the example shop project per session, parsed once; each test gets a fresh
warehouse, a fresh store and pristine project files (partial parsing keeps re-parses cheap)."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from insync.core import EventStore

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "dbt"
os.environ["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"


@pytest.fixture(scope="session")
def shop_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example project copied once; its DuckDB file path never changes (so partial parsing
    stays valid), tests reset the file's contents instead."""
    root = tmp_path_factory.mktemp("dbt")
    shutil.copytree(EXAMPLE, root / "example", ignore=shutil.ignore_patterns(
        "target", "logs", "*.duckdb", ".insync"))
    os.environ["SHOP_DUCKDB"] = str(root / "example" / "shop" / "shop.duckdb")
    sys.path.insert(0, str(root / "example"))
    return root / "example" / "shop"


@pytest.fixture(scope="session")
def pristine(shop_dir: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in shop_dir.rglob("*")
            if p.is_file() and "target" not in p.parts and "logs" not in p.parts
            and p.suffix != ".duckdb"}


@dataclass
class Shop:
    """The shop project of one test: its files, its warehouse and its store."""

    dir: Path
    store: EventStore

    @property
    def warehouse(self) -> Path:
        return self.dir / "shop.duckdb"

    def project(self, **kwargs: object):  # -> DbtProject
        from insync.adapters.dbt import DbtProject

        return DbtProject(self.dir, profiles_dir=self.dir, store=self.store, **kwargs)

    def build(self, *args: str, **kwargs: object):  # -> BuildReport
        return self.project().build(*args, **kwargs)

    def edit(self, relative: str, text: str) -> None:
        path = self.dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def replace(self, relative: str, old: str, new: str) -> None:
        path = self.dir / relative
        body = path.read_text()
        assert old in body, f"{old!r} not in {relative}"
        path.write_text(body.replace(old, new))

    def load_more(self) -> None:
        from load_raw import load

        load(self.warehouse, more=True)

    def sql(self, query: str) -> list[tuple[object, ...]]:
        import duckdb

        with duckdb.connect(str(self.warehouse)) as con:
            return con.execute(query).fetchall()


def _restore(shop_dir: Path, pristine: dict[Path, bytes]) -> None:
    """Put the project files back as they were at session start."""
    for path in shop_dir.rglob("*"):
        if path.is_file() and path not in pristine and not {"target", "logs"} & set(path.parts) \
                and not path.name.startswith("shop.duckdb"):
            path.unlink()
    for path, content in pristine.items():
        if not path.exists() or path.read_bytes() != content:
            path.write_bytes(content)


def _fresh_warehouse(shop_dir: Path) -> None:
    from load_raw import load

    for old in shop_dir.glob("shop.duckdb*"):
        old.unlink()
    load(shop_dir / "shop.duckdb")


@pytest.fixture
def shop(shop_dir: Path, pristine: dict[Path, bytes], sqlite_url: str) -> Iterator[Shop]:
    """The shop with its raw tables loaded and nothing built, on an empty store."""
    _fresh_warehouse(shop_dir)
    store = EventStore(sqlite_url)
    try:
        yield Shop(shop_dir, store)
    finally:
        store.close()
        _restore(shop_dir, pristine)


@pytest.fixture(scope="session")
def golden(shop_dir: Path, pristine: dict[Path, bytes],
           tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Warehouse and store right after one full build, copied into each `built_shop` test."""
    root = tmp_path_factory.mktemp("golden")
    _fresh_warehouse(shop_dir)
    store = EventStore(f"sqlite:///{root / 'insync.db'}")
    report = Shop(shop_dir, store).build()
    store.close()
    assert report.success, report.render()
    shutil.copy(shop_dir / "shop.duckdb", root / "shop.duckdb")
    return root / "shop.duckdb", root / "insync.db"


@pytest.fixture
def built_shop(shop_dir: Path, pristine: dict[Path, bytes], golden: tuple[Path, Path],
               tmp_path: Path) -> Iterator[Shop]:
    """The shop after its first full build (a copy of the session's build: same files)."""
    for old in shop_dir.glob("shop.duckdb*"):
        old.unlink()
    shutil.copy(golden[0], shop_dir / "shop.duckdb")
    (tmp_path / "store").mkdir(exist_ok=True)
    shutil.copy(golden[1], tmp_path / "store" / "insync.db")
    store = EventStore(f"sqlite:///{tmp_path / 'store' / 'insync.db'}")
    try:
        yield Shop(shop_dir, store)
    finally:
        store.close()
        _restore(shop_dir, pristine)
