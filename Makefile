# The two commands: `make run` and `make test`. Everything installs into .venv beside this file.
PYTHON ?= python3
PORT ?= 8000
VENV := .venv
PY := $(VENV)/bin/python

# Debian packages, one per line: where a list names a package, make installs it when missing (apt, as
# root or through sudo). mysqlclient compiles against the MariaDB client library:
BUILD_PACKAGES += pkg-config
BUILD_PACKAGES += libmariadb-dev
BUILD_PACKAGES += gcc
BUILD_PACKAGES += python3-dev
# `make test`, with the test that needs each:
TEST_PACKAGES += chromium         # tests/test_admin_browser.py: a headless Chromium
TEST_PACKAGES += chromium-driver  # tests/test_admin_browser.py: its WebDriver
TEST_PACKAGES += systemd          # tests/test_systemd.py: systemd-analyze verify, systemd-escape
# ... and only when DATABASE_URL is MariaDB, for the MariaDB-only tests (on SQLite they skip):
MARIADB_TEST_PACKAGES += mariadb-server  # devtools/mariadb.py: private servers (mariadbd, mariadb-install-db)
MARIADB_TEST_PACKAGES += mariadb-client  # devtools/mariadb.py: mariadb-admin, mariadb
MARIADB_TEST_PACKAGES += galera-4        # devtools/galera.py: the private Galera cluster's replication
MARIADB_TEST_PACKAGES += rsync           # devtools/galera.py: its state transfers
MARIADB_TEST_PACKAGES += $(BENCH_PACKAGES)  # tests/test_bench.py runs make bench's machinery
# `make bench`:
BENCH_PACKAGES += wrk

.PHONY: run test lint venv system-deps test-deps messages

run: $(VENV)/.runtime .env
	$(PY) manage.py migrate --noinput
	$(PY) manage.py dev_login --port $(PORT)
	$(PY) manage.py runserver 127.0.0.1:$(PORT)

test: $(VENV)/.dev test-deps
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .

# Private from the first byte (umask), and only complete files get the name.
.env:
	(umask 077 && $(PY) -m epnhook.devenv > $@.tmp) && mv $@.tmp $@

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV) || { echo "Install venv support first: sudo apt-get install python3-venv"; exit 1; }

$(VENV)/.runtime: requirements.txt | $(VENV)/bin/python system-deps
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt bench/requirements.txt | $(VENV)/bin/python system-deps
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

# What production needs in .venv (the runtime packages, not the tools of the tests).
venv: $(VENV)/.runtime

# $(call apt_install,packages): install those of the Debian packages that are missing, with apt as root
# or through sudo; where neither works, stop and name them.
apt_install = missing=""; \
	for package in $(1); do \
	  dpkg-query -W -f='$${Status}' $$package 2>/dev/null | grep -q ' installed$$' || missing="$$missing $$package"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then sudo=""; \
	  elif command -v sudo >/dev/null; then sudo="sudo"; \
	  else echo "Please install:$$missing (apt-get install as root)" >&2; exit 1; fi; \
	  echo "Installing:$$missing"; \
	  { $$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; } \
	    || { echo "Could not install:$$missing; install them, then run make again." >&2; exit 1; }; \
	fi

# mysqlclient compiles against the MariaDB client library; fetch it (and a compiler) if missing.
system-deps:
	@if ! pkg-config --exists libmariadb 2>/dev/null || ! command -v cc >/dev/null; then \
	  $(call apt_install,$(BUILD_PACKAGES)); \
	fi

# The system packages of the tests (the lists at the top).
test-deps:
	@$(call apt_install,$(TEST_PACKAGES) $(if $(filter mysql://%,$(DATABASE_URL)),$(MARIADB_TEST_PACKAGES)))

# Refresh the Russian catalogue after changing a translatable string, translate the new entries in
# locale/ru/LC_MESSAGES/django.po, then compile; both files are committed. Needs gettext.
messages: $(VENV)/.dev
	DEBUG=True $(PY) manage.py makemessages -l ru --no-location --ignore "tests/*" --ignore "bench/*" --ignore "var/*" --ignore "staticfiles/*"
	DEBUG=True $(PY) manage.py compilemessages -l ru

# `make bench`: our receiver (gunicorn, as in production) against the baseline, on a private MariaDB.
# BENCH_ARGS passes options to bench/run.py (see --help); ADMIN=0 skips the admin page timings.
ADMIN ?= 1
.PHONY: bench
bench: $(VENV)/.bench
	$(PY) -m bench.run --admin $(ADMIN) $(BENCH_ARGS)

$(VENV)/.bench: bench/requirements.txt $(VENV)/.runtime
	@$(call apt_install,$(BENCH_PACKAGES))
	$(PY) -m pip install -q -r bench/requirements.txt
	touch $@
