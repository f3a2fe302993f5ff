# The two commands of the README's quick start are `make dev` and `make test`.
.PHONY: dev test install stack-up stack-down bench lint

install:
	@bash .ci/install

dev: install
	.venv/bin/agentlog dev

# lint first (seconds): a formatting, type or import-floor error fails the run before the suite starts
test: install lint
	.venv/bin/python -m pytest -q

stack-up: install
	.venv/bin/agentlog stack up

stack-down:
	.venv/bin/agentlog stack down

# ruff check, ruff format --check, mypy (config in pyproject.toml) and the import contracts; every
# step runs and the target fails if any step failed.
lint: install
	@rc=0; \
	.venv/bin/ruff check . || rc=1; \
	.venv/bin/ruff format --check . || rc=1; \
	.venv/bin/mypy || rc=1; \
	.venv/bin/lint-imports || rc=1; \
	exit $$rc

SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

# wrk is the benchmarks' HTTP load generator (bench_append, bench_system); only `make bench` needs it
bench: install
	@command -v wrk >/dev/null 2>&1 || { echo "install: apt package wrk"; $(SUDO) apt-get install -y -qq wrk >/dev/null; }
	.venv/bin/python -m bench
