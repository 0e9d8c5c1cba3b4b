# One-command set-up: `make demo` and `make test` create .venv and install everything on first use.
VENV ?= .venv
PYTHON ?= python3
# The CPU wheel on these machines; GPU users: make TORCH_SPEC=torch (or install torch yourself first).
TORCH_SPEC ?= torch==2.13.0
BIN = $(VENV)/bin

.PHONY: setup demo test test-slow clean

$(BIN)/.installed: pyproject.toml plugins/trl-grpo-plus-math/pyproject.toml plugins/trl-grpo-plus-code/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[test,liger,demo]" -e ./plugins/trl-grpo-plus-math \
		-e "./plugins/trl-grpo-plus-code[humaneval]"
	touch $@

setup: $(BIN)/.installed

demo: setup
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/trl-grpo-plus demo

test: setup
	$(BIN)/python -m pytest

# The long multi-run cases (kill-and-resume, sharded engines) that do not fit in CI's time; DeepSpeed's run there.
test-slow: setup
	$(BIN)/python -m pip install --quiet -e ".[deepspeed]"
	$(BIN)/python -m pytest -m slow

clean:
	rm -rf $(VENV) grpo-plus-demo outputs .pytest_cache
