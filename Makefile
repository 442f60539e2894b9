# The two entry points of the README. Each installs what is missing, configures through the CMake
# presets and builds only what it needs.
JOBS ?= $(shell nproc)
CMAKE ?= cmake
CTEST ?= ctest

.PHONY: all deps tour test test-release test-asan test-tsan test-fuzz bench clean

all: tour

deps:
	@scripts/install-deps.sh

build/%/CMakeCache.txt: | deps
	$(CMAKE) --preset $* >/dev/null

tour: deps build/release/CMakeCache.txt
	$(CMAKE) --build --preset release --target tour -j $(JOBS)
	./build/release/examples/tour

test: test-release test-asan test-tsan test-fuzz

# Explicit targets: make skips pattern rules for .PHONY targets.
# tsan runs only the threaded suites, so it builds only those.
build_target_tsan = --target threaded_tests
define preset_test
test-$(1): deps build/$(1)/CMakeCache.txt
	$$(CMAKE) --build --preset $(1) -j $$(JOBS) $$(build_target_$(1))
	$$(CTEST) --preset $(1)
endef
$(foreach p,release asan tsan,$(eval $(call preset_test,$(p))))

# The request parser under libFuzzer for FUZZ_SECONDS, from the seed corpus in the tree; a crash
# or a sanitizer report fails the run.
FUZZ_SECONDS ?= 60
test-fuzz: deps build/fuzz/CMakeCache.txt
	$(CMAKE) --build --preset fuzz --target http_request_fuzzer -j $(JOBS)
	mkdir -p build/fuzz/corpus/http_request
	./build/fuzz/tests/fuzz/http_request_fuzzer -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
	  -print_final_stats=1 build/fuzz/corpus/http_request tests/fuzz/corpus/http_request

bench: deps build/release/CMakeCache.txt
	$(CMAKE) --build --preset release -j $(JOBS)

clean:
	rm -rf build
