# logfactory — every set-up step lives here, so a fresh clone needs nothing but `make run` / `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= examples/demo.yaml

.PHONY: run test check bench docs reference peers clean venv

venv: $(VENV)/.installed

# Pinned, reproducible install: constraints.txt holds the exact versions of every dependency.
# The main install is not -q: on a first run it downloads for a minute or more, and pip's lines
# (one per package, a bar for the big ones on a terminal) show that it is moving.
$(VENV)/.installed: pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
	  echo "logfactory needs Python 3.11 or newer; $(PYTHON) is $$($(PYTHON) -V 2>&1)." \
	       "Install one, or name it: make PYTHON=python3.12 ..." >&2; exit 1; }
	@echo "Installing logfactory and its pinned dependencies (constraints.txt) into $(VENV):" \
	      "about 60 MB to download on a first run, 250 MB on disk"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip==26.3
	$(BIN)/pip install --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $@

run: venv
	$(BIN)/logfactory run -c $(CONFIG)

# Real protocol peers for the integration tests, installed when missing (Debian packages):
# logger (bsdutils), rsyslog with its TLS driver and its RELP output (omrelp), net-snmp's
# snmptrap/snmpinform, unixODBC with the SQLite ODBC driver (pyodbc needs libodbc at import time).
PEER_PACKAGES = bsdutils rsyslog rsyslog-gnutls rsyslog-relp snmp unixodbc libsqliteodbc
peers:
	@missing=$$(for p in $(PEER_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || printf "%s " $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing test peers: $$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# pytest itself dying of a signal (not a failing test) prints the test that was running and,
# for a crash in a Python thread, every thread's stack (kept by tests/crash_report.py in var/).
# make check first: a lint, type or layering failure fails the run before the long suite starts
test: venv peers kafka-jars opensearch-jars check
	@echo "$(TEST_ENV) $(BIN)/pytest -q"
	@$(TEST_ENV) $(BIN)/pytest -q; rc=$$?; \
	if [ $$rc -gt 128 ]; then \
	  echo; echo "pytest died of signal $$((rc - 128)) during $$(cat var/pytest-running 2>/dev/null)"; \
	  cat var/pytest-crash.log 2>/dev/null; \
	fi; exit $$rc

check: venv
	$(BIN)/ruff check src tests bench kafka opensearch docs/hooks
	$(BIN)/ruff format --check src tests bench kafka opensearch docs/hooks
	$(BIN)/mypy --strict
	$(BIN)/lint-imports --no-cache

bench: venv
	$(BIN)/python -m bench.run_all

# The configuration reference page, made from the config types (src/logfactory/config/);
# tests/unit/test_config_reference.py fails while the committed page is stale.
reference: venv
	$(BIN)/python -m logfactory.config.reference > docs/configuration-reference.md

# The documentation site (MkDocs, Material theme) from docs/ into site/; open site/index.html.
# --strict: a broken link or a page left out of mkdocs.yml's nav is an error, as in the tests.
docs: venv
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	if [ -x $(BIN)/python ]; then $(KAFKA) stop; $(OPENSEARCH) stop; fi
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

# Real Apache Kafka (KRaft) from Maven Central jars (kafka/pom.xml), see kafka/README.md.
# KAFKA_LIB keeps the copied jars (+ a CDS archive) between runs; ~/.m2 caches the downloads.
KAFKA_LIB ?= $(HOME)/.cache/logfactory/kafka-lib
KAFKA := LOGFACTORY_KAFKA_LIB=$(KAFKA_LIB) $(BIN)/python kafka/broker.py

.PHONY: kafka kafka-cluster kafka-stop kafka-jars

kafka-jars: venv
	$(KAFKA) jars

kafka: venv
	$(KAFKA) single

kafka-cluster: venv
	$(KAFKA) cluster

kafka-stop: venv
	$(KAFKA) stop

# Real OpenSearch 2.19.6 from Maven Central jars and a small launcher (opensearch/pom.xml), see
# opensearch/README.md. OPENSEARCH_LIB keeps the built jars between runs; ~/.m2 caches downloads.
# No security plugin: plain HTTP without authentication, bound to 127.0.0.1, for tests and trials.
OPENSEARCH_LIB ?= $(HOME)/.cache/logfactory/opensearch-lib
OPENSEARCH := LOGFACTORY_OPENSEARCH_LIB=$(OPENSEARCH_LIB) $(BIN)/python opensearch/node.py
TEST_ENV = LOGFACTORY_KAFKA_LIB=$(KAFKA_LIB) LOGFACTORY_OPENSEARCH_LIB=$(OPENSEARCH_LIB)

.PHONY: opensearch opensearch-cluster opensearch-stop opensearch-jars

opensearch-jars: venv
	$(OPENSEARCH) jars

# one node, http 127.0.0.1:9200; returns when its health is yellow or green
opensearch: opensearch-jars
	$(OPENSEARCH) single

# three nodes, http 127.0.0.1:9200-9202; returns when all joined and health is green
opensearch-cluster: opensearch-jars
	$(OPENSEARCH) cluster

opensearch-stop: venv
	$(OPENSEARCH) stop
