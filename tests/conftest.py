import os

import pytest

from tests.settings import TEST_TOKEN

REQUIRE_MARIADB = os.environ.get("REQUIRE_MARIADB") == "1"


def pytest_collection_modifyitems(config, items):
    """MariaDB-only tests skip loudly when what they need is missing, unless REQUIRE_MARIADB=1 makes
    that stop the run. `mariadb` tests need DATABASE_URL to point at MariaDB; `private_mariadb` tests
    start their own mariadbd and need only its binaries, so they run on the SQLite default too; `galera`
    tests (also `private_mariadb`) start a private Galera cluster and need galera-4 and rsync besides."""
    from django.conf import settings

    from devtools.galera import available as galera_available
    from devtools.mariadb import available

    on_mariadb = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.mysql"
    if REQUIRE_MARIADB and not on_mariadb:
        pytest.exit("REQUIRE_MARIADB=1 but DATABASE_URL does not point at MariaDB", returncode=3)
    _skip_unless(items, "private_mariadb", available,
                 "mariadbd and mariadb-install-db (apt-get install mariadb-server)")
    _skip_unless(items, "galera", galera_available,
                 "galera-4 and rsync for a private Galera cluster (apt-get install galera-4 rsync)")
    _skip_unless(items, "mariadb", lambda: on_mariadb,
                 "run with DATABASE_URL=mysql://... (CI runs these with REQUIRE_MARIADB=1)")


def _skip_unless(items, marker: str, available, missing: str) -> None:
    """Skip the tests marked `marker` loudly when `available()` says what they need is missing; with
    REQUIRE_MARIADB=1 stop the run instead (asked only when such a test was collected)."""
    marked = [item for item in items if item.get_closest_marker(marker)]
    if not marked or available():
        return
    if REQUIRE_MARIADB:
        pytest.exit(f"REQUIRE_MARIADB=1 but a test needs {missing}", returncode=3)
    for item in marked:
        item.add_marker(pytest.mark.skip(reason=f"needs MariaDB: {missing}"))


REPORT_LINES = pytest.StashKey[list]()


def pytest_terminal_summary(terminalreporter):
    for line in terminalreporter.config.stash.get(REPORT_LINES, []):
        terminalreporter.write_line(line, bold=True)
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if "needs MariaDB" in str(r.longrepr)]
    if skipped:
        terminalreporter.write_line(
            f"WARNING: {len(skipped)} MariaDB-only test(s) were SKIPPED; the guarantees they check were not tested.",
            yellow=True, bold=True,
        )


@pytest.fixture
def epn(settings):
    """EPN.bz's API, faked on loopback and configured as the service's (tests/reconcile_helpers.py)."""
    from tests.reconcile_helpers import configured_epn

    with configured_epn(settings) as network:
        yield network


@pytest.fixture
def admitad(settings):
    """Admitad's API, faked on loopback and configured as the service's (tests/reconcile_helpers.py)."""
    from tests.reconcile_helpers import configured_admitad

    with configured_admitad(settings) as network:
        yield network


@pytest.fixture
def webhook_url():
    return f"/webhook/{TEST_TOKEN}"


@pytest.fixture(scope="session")
def stopped_private_mariadb(tmp_path_factory):
    """A private mariadbd (its own data dir and port), installed, started once and stopped: what the
    service sees when its database is down. A test that starts it must stop it again."""
    from devtools.mariadb import PrivateMariaDB

    server = PrivateMariaDB(tmp_path_factory.mktemp("private-mariadb"))
    server.start()
    server.stop()
    yield server
    server.kill()


@pytest.fixture(scope="session")
def galera_cluster(tmp_path_factory):
    """A private 3-node MariaDB Galera cluster (devtools.galera), started once and shared by the tests
    that use it; a test that kills a node calls `ensure_running()` before it ends. The nodes' logs are
    kept in the session's tmp directory."""
    from devtools import galera

    with galera.temporary_cluster(tmp_path_factory.mktemp("galera-logs")) as cluster:
        yield cluster

@pytest.fixture(autouse=True)
def _empty_cache():
    """Each test starts with an empty cache: the wrong-token limit counts per client address in it."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def network_clock(monkeypatch):
    """Each test starts with this process's snapshot of the admin's networks and tokens loaded and empty,
    as the test database has them, on a clock that stands still: the snapshot is read again only when a
    change is saved (its signals), when a test moves the clock (`network_clock.advance(seconds)`), or
    where the code reads it at once (snapshot.refresh), so that no query count depends on how long a test
    took."""
    from partners import snapshot

    clock = StoppedClock()
    monkeypatch.setattr(snapshot, "_state", snapshot._State(snapshot.Snapshot({}, ()), checked_at=clock.now))
    monkeypatch.setattr(snapshot, "_clock", clock)
    # A request's refresh runs in place, on the test's connection (the refresher thread would see none of
    # the test's uncommitted rows); tests/test_live_tokens.py runs it under gunicorn.
    monkeypatch.setattr(snapshot, "_ask", snapshot.refresh)
    return clock


class StoppedClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def terminal_report(request):
    """Adds a line to the end-of-run summary, for numbers a run must report (such as fuzz counts)."""
    return request.config.stash.setdefault(REPORT_LINES, []).append


@pytest.fixture(autouse=True)
def _language_stays_in_its_own_test():
    """A request in Russian leaves Russian active on the thread (LocaleMiddleware activates, nothing
    deactivates); the next test starts in the default language whatever ran before it."""
    yield
    from django.utils import translation

    translation.deactivate()


@pytest.fixture(autouse=True)
def _background_work_stays_in_its_own_test():
    """Alert emails and spool drains run on background threads; finish them before the next test
    starts, so that each test sees only its own emails and its own spool."""
    yield
    from orders import alerts, spooldrain

    alerts.wait_for_pending()
    if spooldrain._drain_thread is not None:
        spooldrain._drain_thread.join(10)
