# logfactory — every set-up step lives here, so a fresh clone needs nothing but `make run` / `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= examples/demo.yaml

.PHONY: run test check bench peers clean venv

venv: $(VENV)/.installed

# Pinned, reproducible install: constraints.txt holds the exact versions of every dependency.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip==26.3
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $@

run: venv
	$(BIN)/logfactory run -c $(CONFIG)

# Real protocol peers for the integration tests (util-linux logger), installed when missing.
peers:
	@command -v logger >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq bsdutils; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq bsdutils; fi; }

test: venv peers kafka-jars
	LOGFACTORY_KAFKA_LIB=$(KAFKA_LIB) $(BIN)/pytest -q

check: venv
	$(BIN)/ruff check src tests bench kafka
	$(BIN)/ruff format --check src tests bench kafka
	$(BIN)/mypy --strict src

bench: venv
	$(BIN)/python -m bench.run_all

clean:
	if [ -x $(BIN)/python ]; then $(KAFKA) stop; fi
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
