#!/bin/bash
# End-to-end: containerd with its CRI plugin (what kubelet talks to)
# configured as README.md "Kubernetes (CRI) and nerdctl" says, for
# containerd 1.6/1.7 (config version 2): the CRI plugin loads and uses di3fs
# with snapshot annotations on, and a delta image loaded with `cdimg load`
# into CRI's namespace k8s.io runs there through di3fs.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/delta_image.inc"

CDIMG=${CDIMG:-$SRC/build/ctr-tools/cdimg}
[ -x "$CDIMG" ] || fail "no cdimg binary at $CDIMG"
K8S="timeout 180 ctr -a $CSOCK -n k8s.io"
step() { echo "== $*"; }

step "a private containerd with the CRI plugin, its containerd section as documented"
write_containerd_config
sed -i '/^disabled_plugins = \["io.containerd.grpc.v1.cri"\]$/d' "$CTD/config.toml"
cat >>"$CTD/config.toml" <<CONF

[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "di3fs"
  disable_snapshot_annotations = false
[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "$CTD/cni"
CONF
# the documented lines, word for word, are in the config under test
# (README.md shows them as a code block, indented by 4)
awk '/^    \[plugins."io.containerd.grpc.v1.cri".containerd\]$/,/^      disable_snapshot_annotations = false$/ {
	sub(/^    /, ""); print }' "$SRC/README.md" >"$WORK/documented"
[ "$(wc -l <"$WORK/documented")" -eq 3 ] || fail "README.md lacks the CRI snippet: $(cat "$WORK/documented")"
grep -qxFf "$WORK/documented" "$CTD/config.toml" || fail "config differs from README.md's snippet"

start_snapshotter
start_containerd

step "ctr plugins ls: CRI and the di3fs snapshotter are ok"
ctr -a "$CSOCK" plugins ls >"$WORK/plugins"
grep -Eq '^io\.containerd\.grpc\.v1 +cri +.* ok *$' "$WORK/plugins" ||
	fail "CRI plugin not ok: $(grep cri "$WORK/plugins")"
grep -Eq '^io\.containerd\.snapshotter\.v1 +di3fs +.* ok *$' "$WORK/plugins" ||
	fail "di3fs not ok: $(grep di3fs "$WORK/plugins")"

step "the CRI plugin runs with snapshotter di3fs and snapshot annotations"
wait_for 30 grep -q 'Start cri plugin with config' "$CTD/containerd.log" || fail "no CRI start line in containerd's log"
cri=$(grep 'Start cri plugin with config' "$CTD/containerd.log")
echo "$cri" | grep -q 'Snapshotter:di3fs ' || fail "CRI's snapshotter is not di3fs: $cri"
echo "$cri" | grep -q 'DisableSnapshotAnnotations:false' || fail "CRI's snapshot annotations are off: $cri"

step "a delta image loaded into k8s.io runs there through di3fs"
make_delta_image example.org/cri:v1 example.org/cri:v2
$K8S images import --snapshotter=di3fs "$WORK/base.tar" >/dev/null
"$CDIMG" load -q -a "$CSOCK" -n k8s.io "$WORK/delta.cdimg" || fail "cdimg load into k8s.io failed"
$K8S images ls -q | grep -qx example.org/cri:v2 || fail "example.org/cri:v2 not in k8s.io: $($K8S images ls -q)"
id=di3fs-cri-$$
out=$($K8S run --rm --snapshotter=di3fs example.org/cri:v2 "$id" cat /etc/version /etc/added) ||
	{ rm -rf "/run/containerd/runc/k8s.io/$id"; fail "ctr -n k8s.io run failed"; }
expect_eq "container output" "version 2
new in v2" "$out"
$K8S snapshots --snapshotter di3fs ls | grep -q Committed || fail "no di3fs snapshots in k8s.io"
for i in $($K8S images ls -q); do $K8S images rm --sync "$i" >/dev/null; done

stop_containerd
stop_snapshotter TERM
echo PASS
