import hashlib
from importlib.resources import files

from postgit.db.migrate import known_migrations

RELEASED_MIGRATIONS = {
    "0001_initial.sql": "682d6993e709c38581465e869ddfd67283779eeb523ffd7c19552372f8538d16",
    "0002_instances_fillfactor.sql": "4d6a90528e8b03160f61c66ddb83520d819dc2d338af9407ceb7a6620fd32f08",
}
"""sha256 of every released migration. A released migration is never edited: add the next numbered file instead."""


def test_migrations_are_numbered_one_to_n():
    migrations = known_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert migrations[0].name == "initial"
    assert all(m.sql.strip() for m in migrations)


def test_every_file_in_the_folder_is_a_migration():
    folder = files("postgit.db").joinpath("migrations")
    sql_files = sorted(r.name for r in folder.iterdir() if r.name.endswith(".sql"))
    assert sql_files == [f"{m.version:04d}_{m.name}.sql" for m in known_migrations()]


def test_released_migrations_are_unchanged():
    folder = files("postgit.db").joinpath("migrations")
    for name, digest in RELEASED_MIGRATIONS.items():
        actual = hashlib.sha256(folder.joinpath(name).read_bytes()).hexdigest()
        assert actual == digest, f"{name} was released and must not change; put the change in a new migration"


def test_released_migrations_are_still_shipped_in_order():
    shipped = [f"{m.version:04d}_{m.name}.sql" for m in known_migrations()]
    assert shipped[: len(RELEASED_MIGRATIONS)] == sorted(RELEASED_MIGRATIONS)
