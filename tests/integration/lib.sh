# Shared setup for the integration tests (sourced, not run by ctest: ctest
# runs only files that start with a test name, see CMakeLists.txt).
set -eu
SRC=${DI3FS_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
CDIMG=${CDIMG:-$SRC/build/ctr-tools/cdimg}
TREECMP="python3 $SRC/tests/tools/treecmp.py"
WORK=$(mktemp -d /tmp/di3fs-test.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# expect_exit CODE CMD...: runs CMD, fails unless it exits with CODE.
expect_exit() {
	want=$1
	shift
	set +e
	"$@" >"$WORK/out.txt" 2>"$WORK/err.txt"
	got=$?
	set -e
	[ "$got" -eq "$want" ] || {
		cat "$WORK/err.txt" >&2
		fail "expected exit $want, got $got: $*"
	}
}

# copy_summary FILE KEY=VALUE...: FILE holds `cdimg copy --json` output;
# its last object is the summary, with these values.
copy_summary() {
	python3 - "$@" <<'PY'
import json, sys
s = [json.loads(l) for l in open(sys.argv[1])][-1]
assert s["event"] == "summary", s
for kv in sys.argv[2:]:
    k, v = kv.split("=")
    assert str(s[k]) == v, (k, s[k], v)
PY
}

# oci_layer LAYOUT: the blob of the first layer of the first image of an
# unpacked OCI image layout directory.
oci_layer() {
	python3 - "$1" <<'PY'
import json, sys
d = sys.argv[1] + "/blobs/sha256/"
m = json.load(open(d + json.load(open(sys.argv[1] + "/index.json"))["manifests"][0]["digest"][7:]))
print(d + m["layers"][0]["digest"][7:])
PY
}
