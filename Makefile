# Two entry points, each self-contained on a fresh machine with Python 3.11 + pip:
#   make demo  - set up .venv and run the main job
#   make test  - set up .venv and run lint + the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: demo test lint bench protos clean sysdeps guest-image

# System packages the tests and the demo drive for real (runc and tini in the guest agent, the qemu
# driver, containerd and Docker as OCI clients, nats-server, Chromium). Installed with apt
# when running as root and missing; otherwise left to the user.
SYSDEPS = runc tini containerd docker.io qemu-system-x86 linux-image-amd64 busybox-static \
          nats-server openssl chromium e2fsprogs xfsprogs util-linux

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	touch $@

sysdeps:
	@missing=$$(for p in $(SYSDEPS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	    | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing: $$missing"; \
	    (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing) \
	      >/tmp/sbx-apt.log 2>&1 || { tail -20 /tmp/sbx-apt.log; exit 1; }; \
	  else echo "missing system packages (install them as root): $$missing"; fi; fi

demo: sysdeps $(BIN)/.installed
	$(BIN)/sbx run -- echo hello

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy

# The qemu driver's guest initramfs, built once and reused while its inputs are unchanged.
guest-image: sysdeps $(BIN)/.installed
	$(BIN)/sbx guest-image build --cache-dir build/guest-images

test: sysdeps lint guest-image
	$(BIN)/python -m pytest

bench: $(BIN)/.installed
	for b in eventstore agent lifecycle recovery report ship; do $(BIN)/python bench/$${b}_bench.py || exit 1; done

protos: $(BIN)/.installed
	$(BIN)/python -m protos.generate

clean:
	rm -rf $(VENV) build *.egg-info
