# dropletguard: every target is a few lines; `make help` lists them.
SHELL := /bin/bash
CARGO ?= cargo
TOOLS := .tools
SARIF_SCHEMA := $(TOOLS)/sarif-2.1.0-rtm.5.json
PY_TEST_DEPS := openapi-schema-validator jsonschema 'moto[server]' cfn-lint


TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
FUNCTIONS := scheduled-audit webhook incident-response actions-poller

FUNCTION ?= incident-response
EVENT ?= functions/$(FUNCTION)/events/$(firstword $(notdir $(wildcard functions/$(FUNCTION)/events/*.json)))

.PHONY: help setup build build-lambda deploy-check deploy invoke-local test lint demo sim bench clean openssh-newer

help:
	@echo "make setup   install what the tests need (openssh-server, chromium, Python validators, moto_server, cfn-lint, the SARIF schema)"
	@echo "make build   build the dropletguard command (release)"
	@echo "make build-lambda   the four functions for Lambda (arm64; cargo-lambda, zig, SAM in .tools/venv)"
	@echo "make deploy-check   sam validate --lint, sam build, and check the four bootstraps are aarch64"
	@echo "make deploy         sam build, then sam deploy --guided (the first time)"
	@echo "make invoke-local FUNCTION=webhook EVENT=file.json [STATE=dir] [ARGS='--mode enforce --droplets N']   one function under a local Runtime API; only its answer on stdout"
	@echo "make test    setup, then run every test"
	@echo "make lint    cargo fmt --check, clippy -D warnings, functions of at most 60 lines, cfn-lint"
	@echo "make demo    audit an insecure simulated fleet (no token needed)"
	@echo "make sim     serve the DigitalOcean API simulator on 127.0.0.1:8080"
	@echo "make bench   run the benchmarks and write BENCHMARKS.md"
	@echo "make openssh-newer   extract Debian backports' OpenSSH (>= 9.8) into $(TOOLS)/openssh for the PerSourcePenalties test"

setup:
	@command -v python3 >/dev/null || (apt-get update -qq && apt-get install -y -qq python3 python3-pip)
	@# OpenSSH's server for the SSH tests (they start their own sshd on loopback ports; the
	@# package's own service is kept from starting), and ss/netstat for the service audit.
	@test -x /usr/sbin/sshd && command -v ss >/dev/null && command -v netstat >/dev/null || { \
	  apt-get update -qq; \
	  if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; tmp_policy=1; fi; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client iproute2 net-tools >/dev/null; \
	  if [ -n "$$tmp_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi; }
	@# Debian's Chromium, for the HTML report's browser test (headless, driven over a pipe).
	@command -v chromium >/dev/null || { apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@python3 -c 'import openapi_schema_validator, jsonschema' 2>/dev/null && command -v moto_server >/dev/null && command -v cfn-lint >/dev/null || \
	  python3 -m pip install --quiet --disable-pip-version-check $(PY_TEST_DEPS) || \
	  python3 -m pip install --quiet --break-system-packages $(PY_TEST_DEPS)
	@mkdir -p $(TOOLS)
	@test -f $(SARIF_SCHEMA) || { \
	  command -v npm >/dev/null || (apt-get update -qq && apt-get install -y -qq npm); \
	  cd $(TOOLS) && npm pack --silent @microsoft/jest-sarif@1.0.0-beta.0 >/dev/null && \
	  tar xzf microsoft-jest-sarif-1.0.0-beta.0.tgz package/lib/schemas/sarif-2.1.0-rtm.5.json && \
	  mv package/lib/schemas/sarif-2.1.0-rtm.5.json . && rm -rf package microsoft-jest-sarif-*.tgz; }
	@echo "setup: test tools ready"

build:
	$(CARGO) build --release -p dropletguard

test: setup
	@set -o pipefail; $(CARGO) test --workspace --no-fail-fast 2>&1 | tee $(TOOLS)/test.log; status=$$?; \
	  awk -f tests/tools/summary.awk -v status=$$status $(TOOLS)/test.log; \
	  exit $$status

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	@# Every function of the libraries and binaries fits a screen: at most 60 lines of code
	@# (clippy.toml); a data table says why it is longer.
	$(CARGO) clippy --workspace --lib --bins -- -D warnings -D clippy::too_many_lines
	cfn-lint template.yaml

demo:
	@$(CARGO) build -q -p dropletguard
	@$(CARGO) run -q -p dropletguard -- demo

sim:
	$(CARGO) run -q -p dropletguard -- sim --listen 127.0.0.1:8080 --droplets 1000

# The deploy tools live in a virtual environment of their own under .tools/venv: Debian's
# python3 refuses system-wide pip installs (PEP 668), and aws-sam-cli's botocore pin would break
# an installed awscli.
VENV := $(TOOLS)/venv
DEPLOY_TOOLS := cargo-lambda ziglang aws-sam-cli
$(VENV)/bin/sam:
	@command -v python3 >/dev/null || (apt-get update -qq && apt-get install -y -qq python3)
	@python3 -m venv --help >/dev/null 2>&1 && python3 -c 'import ensurepip' 2>/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null)
	python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check $(DEPLOY_TOOLS)

build-lambda: $(VENV)/bin/sam
	@rustup target list --installed | grep -q aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(CARGO) lambda build --release --arm64 --lambda-dir $(TARGET_DIR)/lambda-arm64 $(addprefix --bin ,$(FUNCTIONS))
	@ls -l $(TARGET_DIR)/lambda-arm64/*/bootstrap

# What `make deploy` would upload, checked without an AWS account: the template linted, the
# stack built by SAM, and each function's bootstrap an aarch64 ELF executable.
deploy-check: build-lambda
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" sam validate --lint --region us-east-1
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" sam build --beta-features --build-dir $(TARGET_DIR)/sam-build
	@for f in $(FUNCTIONS); do \
	  b=$$(find $(TARGET_DIR)/sam-build -path "*/bootstrap" -print | grep -i "$$(echo $$f | tr -d -)" | head -1); \
	  test -n "$$b" || { echo "deploy-check: no bootstrap for $$f in $(TARGET_DIR)/sam-build"; exit 1; }; \
	  python3 tests/tools/elf_machine.py "$$b" aarch64 || exit 1; \
	done
	@echo "deploy-check: template valid, four aarch64 bootstraps built"

deploy: $(VENV)/bin/sam
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" sam build --beta-features
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" sam deploy $(if $(wildcard samconfig.toml),,--guided) --capabilities CAPABILITY_IAM

# ARGS passes the emulator's own flags: ARGS="--mode enforce --droplets 200".
invoke-local:
	@$(CARGO) build -q -p $(FUNCTION) -p dropletguard-sim --bins
	@$(TARGET_DIR)/debug/invoke-local $(FUNCTION) $(EVENT) $(if $(STATE),--state $(STATE)) $(ARGS)

bench:
	@test -x /usr/bin/time || (apt-get update -qq && apt-get install -y -qq time)
	$(CARGO) build --release -p dropletguard -p dropletguard-sim $(addprefix -p ,$(FUNCTIONS)) --bins
	$(TARGET_DIR)/release/bench --out BENCHMARKS.md

clean:
	$(CARGO) clean
	rm -rf $(TOOLS)

openssh-newer:
	@# Not installed: the package is unpacked beside the system's sshd, apt lists kept under $(TOOLS).
	@mkdir -p $(TOOLS)/apt/lists/partial && echo 'deb http://deb.debian.org/debian bookworm-backports main' > $(TOOLS)/apt/sources.list
	@apt-get -qq -o Dir::Etc::sourcelist=$(CURDIR)/$(TOOLS)/apt/sources.list -o Dir::Etc::sourceparts=- -o Dir::State::Lists=$(CURDIR)/$(TOOLS)/apt/lists update
	@cd $(TOOLS)/apt && apt-get -qq -o Dir::Etc::sourcelist=$(CURDIR)/$(TOOLS)/apt/sources.list -o Dir::Etc::sourceparts=- -o Dir::State::Lists=$(CURDIR)/$(TOOLS)/apt/lists download openssh-server/bookworm-backports
	@dpkg -x $(TOOLS)/apt/openssh-server_*.deb $(TOOLS)/openssh && $(TOOLS)/openssh/usr/sbin/sshd -V
