# The two commands the README starts with: `make demo` and `make test`. Both install what they need.
.PHONY: bootstrap demo demo-stop test lint unit platform-up platform-down bench image

VENV := .venv/bin

bootstrap:
	@bash deploy/local/bootstrap.sh

demo: bootstrap
	@bash deploy/local/demo.sh

demo-stop:
	@bash deploy/local/demo.sh stop

lint: bootstrap
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/mypy services shared tools tests deploy/local deploy/grafana deploy/prometheus bench

test: lint
	$(VENV)/pytest

unit: bootstrap
	$(VENV)/pytest tests/unit

platform-up: bootstrap
	$(VENV)/python deploy/local/motcua_local.py up

platform-down:
	@python3 deploy/local/motcua_local.py down

# Quix Streams (the metrics replay's comparison) needs pydantic<2.14: its own virtualenv.
bench: bootstrap
	@[ -x .venv-quix/bin/python ] || $(VENV)/python -m venv .venv-quix
	@[ .venv-quix/.installed -nt bench/quix-requirements.txt ] || { .venv-quix/bin/python -m pip install -q -r bench/quix-requirements.txt && touch .venv-quix/.installed; }
	PYTHONPATH=deploy/local:. $(VENV)/python -m bench.run $(BENCH_ARGS)

# The one container image of the three services (buildah here, no Docker engine needed; see
# docs/operations.md for building it with Docker from deploy/docker/Dockerfile).
image: bootstrap
	@bash deploy/docker/build.sh
