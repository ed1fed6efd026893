# The two commands: `make run` and `make test`. Everything installs into .venv beside this file.
PYTHON ?= python3
PORT ?= 8000
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test lint system-deps messages

run: $(VENV)/.runtime .env
	$(PY) manage.py migrate --noinput
	$(PY) manage.py dev_login --port $(PORT)
	$(PY) manage.py runserver 127.0.0.1:$(PORT)

test: $(VENV)/.dev
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .

.env:
	$(PY) -m epnhook.devenv > .env
	chmod 600 .env

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV) || { echo "Install venv support first: sudo apt-get install python3-venv"; exit 1; }

$(VENV)/.runtime: requirements.txt | $(VENV)/bin/python system-deps
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt bench/requirements.txt | $(VENV)/bin/python system-deps
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

# mysqlclient compiles against the MariaDB client library; fetch it (and a compiler) if missing.
system-deps:
	@if ! pkg-config --exists libmariadb 2>/dev/null || ! command -v cc >/dev/null; then \
	  pkgs="pkg-config libmariadb-dev gcc python3-dev"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$pkgs; \
	  elif command -v sudo >/dev/null; then sudo apt-get update -qq && sudo apt-get install -y -qq $$pkgs; \
	  else echo "Please install: $$pkgs"; exit 1; fi; \
	fi

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
	@command -v wrk >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq wrk; fi; }
	$(PY) -m pip install -q -r bench/requirements.txt
	touch $@
