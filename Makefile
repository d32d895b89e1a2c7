# The two commands of the README:
#   make run    installs what is missing, builds, starts the hub on :8501 (data in ./data)
#   make test   installs what is missing, builds and runs every test
.PHONY: deps deps-test build run test bench clean

deps:
	@scripts/install-deps.sh

deps-test:
	@scripts/install-deps.sh --test

build: deps
	cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build build

run: build
	./build/stream-hub serve

test: deps-test
	scripts/test.sh

bench: deps-test build
	bench/run.sh

clean:
	rm -rf build build-asan build-fuzz
