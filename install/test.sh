#!/bin/bash
# Builds di3fs and runs the whole test suite twice: a normal build and an
# AddressSanitizer+UndefinedBehaviorSanitizer build. Installs what it needs.
# Usage: bash install/test.sh [--quick]   (as root; --quick: normal build only)
set -eu
cd "$(dirname "$0")/.."
quick=0
[ "${1:-}" = "--quick" ] && quick=1

if [ "$(id -u)" -ne 0 ]; then
	echo "install/test.sh: run as root (tests create device nodes, set owners, run containerd)" >&2
	exit 2
fi
sh install/deps.sh
jobs=$(nproc)

run_suite() {
	dir=$1
	shift
	echo "== configure $dir $*"
	cmake -S . -B "$dir" -DBUILD_TESTING=ON "$@" >"$dir.configure.log" 2>&1 || {
		cat "$dir.configure.log"
		exit 1
	}
	echo "== build $dir"
	cmake --build "$dir" -j "$jobs"
	echo "== test $dir"
	# one test more than cores: the e2e tests wait on containerd much of
	# their time (they hold its lock, so only one runs at once)
	(cd "$dir" && ctest --output-on-failure -j "$((jobs + 1))" ${CTEST_ARGS:-})
}

# Real Debian trees are built once (cached under /var/cache/di3fs) before
# the suites run, so both suites share them.
bash tests/assets/mktrees.sh

clang-format --dry-run --Werror $(git ls-files '*.c' '*.h' 2>/dev/null || find . -name '*.[ch]' -not -path './build*')

# Fuzz targets (clang libFuzzer): replay every saved crash input through
# every target, then a short, seeded, deterministic run of each on its corpus.
run_fuzz() {
	echo "== fuzz targets"
	CC=clang cmake -S . -B build-fuzz -DENABLE_FUZZERS=ON -DBUILD_SNAPSHOTTER=OFF \
		>build-fuzz.configure.log 2>&1 || {
		cat build-fuzz.configure.log
		exit 1
	}
	# every target in tests/fuzz (ctest replays should-fail through each)
	targets=$(cd tests/fuzz && ls fuzz_*.c | sed 's/\.c$//')
	cmake --build build-fuzz -j "$jobs" --target $targets
	(cd build-fuzz && ctest --output-on-failure -R '^fuzz\.')
	for t in $(echo "$targets" | sed 's/^fuzz_//'); do
		new=$(mktemp -d /tmp/di3fs-fuzz.XXXXXX) # new units go here, not into the repo
		corpus=tests/fuzz/corpus/$t
		[ -d "$corpus" ] || corpus=
		"build-fuzz/tests/fuzz/fuzz_$t" -seed=1 -runs=3000 -max_len=65536 "$new" $corpus
		rm -rf "$new"
	done
}

run_suite build
if [ "$quick" -eq 0 ]; then
	# Every test but those labelled plain-only (big real data whose code
	# paths it runs on small inputs; tests/integration/CMakeLists.txt says
	# which and why), to keep CI under 45 minutes on 2 cores.
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		CTEST_ARGS="-LE plain-only" run_suite build-asan -DENABLE_SANITIZERS=ON
	run_fuzz
fi
echo "install/test.sh: all suites passed"
