# The two commands of the README's quick start are `make dev` and `make test`.
.PHONY: dev test install stack-up stack-down bench

install:
	@bash .ci/install

dev: install
	.venv/bin/agentlog dev

test: install
	.venv/bin/python -m pytest -q

stack-up: install
	.venv/bin/agentlog stack up

stack-down:
	.venv/bin/agentlog stack down

bench: install
	.venv/bin/python -m bench
