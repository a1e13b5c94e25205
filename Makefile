# Two commands matter: `make demo` and `make test`. Both build .venv on first use.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench tools clean audit linked secrets

# A strict editable install: a link tree that static tools (pyright, IDEs) can follow.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test,rocksdb]' $(STRICT)
	touch $@
STRICT := --config-settings editable_mode=strict

# The link tree lists files, so a module added or removed since the install is linked anew.
linked: $(STAMP)
	@find streams models -name '*.py' | sort > $(VENV)/.modules.new
	@cmp -s $(VENV)/.modules.new $(VENV)/.modules || { \
	  $(BIN)/pip install --quiet --disable-pip-version-check --no-deps -c constraints.txt -e . $(STRICT) \
	  && mv $(VENV)/.modules.new $(VENV)/.modules; }

demo: linked
	$(BIN)/reachwatch demo

# Prometheus, promtool, Alertmanager and amtool from Debian for the ops-config tests.
tools:
	@command -v promtool >/dev/null && command -v prometheus-alertmanager >/dev/null && command -v amtool >/dev/null \
	  && command -v kcat >/dev/null \
	  || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	       prometheus prometheus-alertmanager kcat >/dev/null; } \
	  || echo "warning: could not install prometheus/alertmanager/kcat from Debian; their tests will be skipped"

# Two pytest-xdist workers, one test file each at a time (module fixtures, such as a trained
# company, stay within their file): most of a streaming test is waiting for a broker or a
# worker, so two in parallel take ~9 min where one took ~15 (2 cores).
test: linked tools
	$(BIN)/ruff check streams models tests bench
	$(BIN)/pytest -q -n 2 --dist loadfile -m "not slow" tests \
	  --doctest-modules --pyargs reachwatch.models reachwatch.streams

# The Docker secrets of compose.yaml (web token, Kafka SCRAM passwords and TLS, Grafana's
# admin password) into ./secrets, never committed; see secrets/README.md. Needs openssl.
secrets:
	sh dashboards/secrets.sh secrets

bench: linked
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) var .pytest_cache

# Vulnerability audit of the pinned dependencies (needs PyPI's or OSV's API reachable).
audit:
	$(PYTHON) -m venv .audit-venv && .audit-venv/bin/pip install --quiet pip-audit
	.audit-venv/bin/pip-audit -r constraints.txt --strict $(AUDIT_ACCEPTED)

# Accepted findings, each with its reason (README, "Reliability and security"):
# PYSEC-2024-277 (joblib, disputed): unpickling of joblib's own cache; reachwatch never
# unpickles, models load through skops with checksums and a type allow-list.
AUDIT_ACCEPTED := --ignore-vuln PYSEC-2024-277
