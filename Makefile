# Two commands matter: `make demo` and `make test`. Both install what they need (uv, then the locked
# dependencies into .venv) on a machine that has only Python 3.11+.
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
export UV_PYTHON_DOWNLOADS := never

.PHONY: demo test lint format bench bench-ui bench-extract bench-lightning install browser sshd screenshots

$(UV):
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# The project's own modules are byte-compiled too (an editable install is not): start-up would otherwise
# recompile them on every command where PYTHONDONTWRITEBYTECODE is set.
install: $(UV)
	$(UV) sync --frozen --quiet --compile-bytecode
	.venv/bin/python -m compileall -q src

demo: install
	$(UV) run --frozen smartingest demo

# The browser tests drive Debian's Chromium (a test tool's own browser download is never used).
browser:
	@command -v chromium >/dev/null 2>&1 || { echo "installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# The SSH tunnel tests start Debian's OpenSSH server on loopback themselves; only the program is needed.
sshd:
	@test -x /usr/sbin/sshd || { echo "installing Debian's openssh-server for the SSH tunnel tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >/dev/null; }

test: install browser sshd
	$(UV) run --frozen ruff check .
	$(UV) run --frozen mypy
	$(UV) run --frozen pytest -q

lint: install
	$(UV) run --frozen ruff check .
	$(UV) run --frozen mypy
	$(UV) run --frozen ruff format --check .

format: install
	$(UV) run --frozen ruff format .
	$(UV) run --frozen ruff check --fix .

# The web UI's screenshots in docs/screenshots, taken by its browser tests.
screenshots: install browser
	SMARTINGEST_SCREENSHOTS=$(CURDIR)/docs/screenshots $(UV) run --frozen pytest -q tests/test_ui_monitoring.py tests/test_ui_definitions.py tests/test_ui_sync_editor.py

bench: install
	$(UV) run --frozen python bench/users_sync.py $(ARGS)

# Reading a model out of PostgreSQL and MariaDB, against each database's own client dumping the same query.
bench-extract: install
	$(UV) run --frozen python bench/extract.py $(ARGS)

# The 1%-changed run with the Basic and the Lightning engines, against COPY (--rows 1000000,10000000 for both sizes).
bench-lightning: install
	$(UV) run --frozen python bench/lightning.py $(ARGS)

# The web UI's pages with 100 syncs and a million-row run, against the same pages small.
bench-ui: install
	$(UV) run --frozen python bench/ui_pages.py $(ARGS)
