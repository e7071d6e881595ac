# Two commands a newcomer needs: `make run` and `make test`. Both create .venv if missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The machine's local CPU torch wheel; uv ignores pip.conf, so we name the folder.
WHEELS ?= /opt/wheels
FIND_LINKS := $(if $(wildcard $(WHEELS)),--find-links $(WHEELS),)
STAMP := $(VENV)/.installed

.PHONY: run test install compile clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q uv
	# torch FIRST, pinned: a looser spec downloads gigabytes of CUDA wheels
	$(VENV)/bin/uv pip install -q --python $(PY) $(FIND_LINKS) torch==2.13.0
	$(VENV)/bin/uv pip install -q --python $(PY) $(FIND_LINKS) -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The daily pipeline, locally, on the default data, for the day after the data ends.
run: $(STAMP)
	DO_NOT_TRACK=1 $(VENV)/bin/quantrec run $(ARGS)

test: $(STAMP)
	DO_NOT_TRACK=1 $(PY) -m pytest $(ARGS)

compile: $(STAMP)
	$(VENV)/bin/quantrec compile

clean:
	rm -rf pipeline_root validation_report .pytest_cache .hypothesis
