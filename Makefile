# The two entry points of the README. Each installs what is missing, configures through the CMake
# presets and builds only what it needs.
JOBS ?= $(shell nproc)
CMAKE ?= cmake
CTEST ?= ctest

.PHONY: all deps tour test test-release test-asan test-tsan bench clean

all: tour

deps:
	@scripts/install-deps.sh

build/%/CMakeCache.txt: | deps
	$(CMAKE) --preset $* >/dev/null

tour: deps build/release/CMakeCache.txt
	$(CMAKE) --build --preset release --target tour -j $(JOBS)
	./build/release/examples/tour

test: test-release test-asan test-tsan

# Explicit targets: make skips pattern rules for .PHONY targets.
define preset_test
test-$(1): deps build/$(1)/CMakeCache.txt
	$$(CMAKE) --build --preset $(1) -j $$(JOBS)
	$$(CTEST) --preset $(1)
endef
$(foreach p,release asan tsan,$(eval $(call preset_test,$(p))))

bench: deps build/release/CMakeCache.txt
	$(CMAKE) --build --preset release -j $(JOBS)

clean:
	rm -rf build
