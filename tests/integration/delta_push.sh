#!/bin/bash
# cdimg push into Debian's docker-registry (distribution 2.8: no referrers
# API) on loopback: v1 and v2 copied there, the v1 -> v2 .cdimg pushed; the
# artifact manifest's fields (artifactType, empty config, the .dimg and
# recipes layers with the .cdimg's digests, subject = v2's manifest,
# annotations), the referrers tag index listing it; a second push changes
# nothing; another delta to v2 makes two entries; four pushed at once lose
# none; a registry with the referrers API gets no referrers tag; a delta whose target is
# not in the repository fails (exit 1) naming it; a target whose layers are
# there but not its manifest gets its manifest put.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/registry.inc"

reg_start reg
R=127.0.0.1:$PORT_reg
MKOCI="$PY3 $TOOLS/mkoci.py"

# image NAME: a layout of a small tree in $WORK/NAME; the tree is $WORK/t-NAME
image() {
	$MKOCI --ref "app:$1" "$WORK/t-$1" "$WORK/$1.tar" >/dev/null
	mkdir -p "$WORK/$1"
	tar -xf "$WORK/$1.tar" -C "$WORK/$1"
}
mkdir -p "$WORK/t-v1/etc" "$WORK/t-v1/bin"
head -c 300000 /dev/urandom >"$WORK/t-v1/bin/tool"
echo "version 1" >"$WORK/t-v1/etc/version"
cp -a "$WORK/t-v1" "$WORK/t-v2"
head -c 1000 /dev/urandom >>"$WORK/t-v2/bin/tool"
echo "version 2" >"$WORK/t-v2/etc/version"
cp -a "$WORK/t-v1" "$WORK/t-v0"
echo "version 0" >"$WORK/t-v0/etc/version"
cp -a "$WORK/t-v2" "$WORK/t-v3"
echo "version 3" >"$WORK/t-v3/etc/version"
for v in v0 v1 v2 v3; do image $v; done

"$CDIMG" copy -q "oci:$WORK/v1" "docker://$R/app:v1"
"$CDIMG" copy -q "oci:$WORK/v2" "docker://$R/app:v2"
"$CDIMG" diff -q "docker://$R/app:v1" "docker://$R/app:v2" -o "$WORK/d12.cdimg"
"$CDIMG" diff -q "oci:$WORK/v0" "oci:$WORK/v2" -o "$WORK/d02.cdimg"
"$CDIMG" diff -q "oci:$WORK/v2" "oci:$WORK/v3" -o "$WORK/d23.cdimg"
"$CDIMG" show --json "$WORK/d12.cdimg" >"$WORK/show12.json"

V2=$(curl -fsS -o /dev/null -w '%header{docker-content-digest}' \
	-H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$R/v2/app/manifests/v2") ||
	V2=sha256:$(curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
		"http://$R/v2/app/manifests/v2" | sha256sum | cut -d' ' -f1)
case $V2 in sha256:????????????????????????????????????????????????????????????????) ;;
*) fail "no digest for app:v2: $V2" ;;
esac

"$CDIMG" push --json "$WORK/d12.cdimg" "docker://$R/app" >"$WORK/p1.json"
"$CDIMG" push --help | grep -q "cdimg copy IMAGE docker://HOST/REPO" ||
	fail "push --help does not say to copy the target first"

# check.py: the artifact and the referrers index, as the registry serves them
cat >"$WORK/check.py" <<'PY'
import hashlib, json, sys, urllib.request
reg, push_json, show_json, v2, want_entries = sys.argv[1:6]
others = sys.argv[6:]
p = json.load(open(push_json))
show = json.load(open(show_json))
ACC = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"
def get(path):
    req = urllib.request.Request("http://%s/v2/app/%s" % (reg, path), headers={"Accept": ACC})
    with urllib.request.urlopen(req) as r:
        return r.read()
def check(c, what):
    if not c:
        sys.exit("FAIL: " + what)
raw = get("manifests/" + p["digest"])
check("sha256:" + hashlib.sha256(raw).hexdigest() == p["digest"], "manifest digest")
check(len(raw) == p["size"], "manifest size")
m = json.loads(raw)
check(m["schemaVersion"] == 2, "schemaVersion")
check(m["mediaType"] == "application/vnd.oci.image.manifest.v1+json", "mediaType")
check(m["artifactType"] == "application/vnd.di3fs.delta.v1", "artifactType")
check(m["config"] == {"digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
                      "mediaType": "application/vnd.oci.empty.v1+json", "size": 2}, "config: %s" % m["config"])
check(get("blobs/" + m["config"]["digest"]) == b"{}", "the empty blob")
check(m["subject"]["digest"] == v2 == p["subject"], "subject %s, v2 %s" % (m["subject"], v2))
check(m["subject"]["size"] == len(get("manifests/" + v2)), "subject size")
check(m["subject"]["mediaType"] == "application/vnd.oci.image.manifest.v1+json", "subject type")
ls = m["layers"]
check(len(ls) == 2, "two layers")
check(ls[0]["mediaType"] == "application/vnd.di3fs.dimg.v1", "layer 0 type")
check(ls[1]["mediaType"] == "application/vnd.di3fs.layers.v1+zstd", "layer 1 type")
for l in ls:
    b = get("blobs/" + l["digest"])
    check("sha256:" + hashlib.sha256(b).hexdigest() == l["digest"] and len(b) == l["size"],
          "blob " + l["digest"])
def holder(o):
    if isinstance(o, dict):
        if "dimg_digest" in o:
            return o
        for v in o.values():
            r = holder(v)
            if r is not None:
                return r
c = holder(show)
check(c is not None, "no .cdimg fields in show --json")
a = m["annotations"]
check(ls[0]["digest"] == c["dimg_digest"], "the .dimg digest is not the .cdimg's")
check(ls[1]["digest"] == c["layer_recipes"]["digest"], "the recipes digest is not the .cdimg's")
check(a["io.di3fs.delta.target.manifest.digest"] == v2 == c["target"]["manifest_digest"], "target manifest annotation")
check(a["io.di3fs.delta.base.config.digest"] == c["base"]["config_digest"], "base config annotation")
check(a["io.di3fs.delta.base.tree"] == c["base"]["tree"], "base tree annotation")
check(a["io.di3fs.delta.target.tree"] == c["target"]["tree"], "target tree annotation")
check(a["io.di3fs.delta.target.config.digest"] == c["target"]["config_digest"], "target config annotation")
check(a["io.di3fs.delta.target.ref"] == c["target"]["ref"], "target ref annotation")
check(a["io.di3fs.delta.dimg.version"] == "1", "version annotation")
check(len(a["io.di3fs.delta.base.tree"]) == 64 and len(a["io.di3fs.delta.target.tree"]) == 64, "tree ids")
check(a["io.di3fs.delta.platform"].startswith("linux/"), "platform")
check("org.opencontainers.image.created" not in a, "a created date")
tag = "sha256-" + v2[7:]
check(p["tag"] == tag and p["referrers"] == "tag", "push says tag %s" % p["tag"])
idx = json.loads(get("manifests/" + tag))
check(idx["mediaType"] == "application/vnd.oci.image.index.v1+json", "index type")
ds = [d["digest"] for d in idx["manifests"]]
check(len(ds) == int(want_entries), "index has %d entries, want %s" % (len(ds), want_entries))
check(len(set(ds)) == len(ds), "an entry twice")
check(p["entries"] == len(ds), "push says %d entries" % p["entries"])
me = [d for d in idx["manifests"] if d["digest"] == p["digest"]]
check(len(me) == 1, "the delta is not listed")
check(me[0]["artifactType"] == "application/vnd.di3fs.delta.v1", "entry artifactType")
check(me[0]["mediaType"] == m["mediaType"] and me[0]["size"] == p["size"], "entry descriptor")
check(me[0]["annotations"] == a, "entry annotations")
for o in others:
    check(o in ds, "an earlier delta %s lost" % o)
PY
$PY3 "$WORK/check.py" "$R" "$WORK/p1.json" "$WORK/show12.json" "$V2" 1
D1=$(json_get "$WORK/p1.json" 'd["digest"]')
[ "$(json_get "$WORK/p1.json" 'd["added"]')" = True ] || fail "first push did not add"

# Twice: one entry, no write.
"$CDIMG" push --json "$WORK/d12.cdimg" "docker://$R/app" >"$WORK/p2.json"
$PY3 "$WORK/check.py" "$R" "$WORK/p2.json" "$WORK/show12.json" "$V2" 1
[ "$(json_get "$WORK/p2.json" 'd["tag_writes"]')" = 0 ] || fail "the second push wrote the tag"
[ "$(json_get "$WORK/p2.json" 'd["blobs_pushed"]')" = 0 ] || fail "the second push sent blobs"

# Another delta for v2 (from v0, not in the registry: only v2 needs be): two entries.
"$CDIMG" show --json "$WORK/d02.cdimg" >"$WORK/show02.json"
"$CDIMG" push --json "$WORK/d02.cdimg" "docker://$R/app" >"$WORK/p3.json"
$PY3 "$WORK/check.py" "$R" "$WORK/p3.json" "$WORK/show02.json" "$V2" 2 "$D1"

# Four pushers at once, each a delta to v2 from another base: no entry lost.
for i in 1 2 3 4; do
	cp -a "$WORK/t-v1" "$WORK/t-b$i"
	echo "base $i" >"$WORK/t-b$i/etc/version"
	image "b$i"
	"$CDIMG" diff -q "oci:$WORK/b$i" "oci:$WORK/v2" -o "$WORK/db$i.cdimg"
done
pids=""
for i in 1 2 3 4; do
	"$CDIMG" push --json "$WORK/db$i.cdimg" "docker://$R/app" >"$WORK/pb$i.json" &
	pids="$pids $!"
done
for p in $pids; do wait "$p" || fail "a concurrent push failed"; done
writes=$(for i in 1 2 3 4; do json_get "$WORK/pb$i.json" 'd["tag_writes"]'; done | awk '{ s += $1 } END { print s }')
[ "$writes" -ge 4 ] || fail "four new deltas, $writes writes of the tag"
D3=$(json_get "$WORK/p3.json" 'd["digest"]')
"$CDIMG" push --json "$WORK/d12.cdimg" "docker://$R/app" >"$WORK/p6.json"
$PY3 "$WORK/check.py" "$R" "$WORK/p6.json" "$WORK/show12.json" "$V2" 6 "$D1" "$D3" \
	$(for i in 1 2 3 4; do json_get "$WORK/pb$i.json" 'd["digest"]'; done)

# A registry with the referrers API (faultproxy --index-referrers over the
# same registry): it lists the deltas, no referrers tag is written.
proxy_start api "$PORT_reg" --index-referrers
A=127.0.0.1:$PORT_api
"$CDIMG" copy -q "oci:$WORK/v2" "docker://$A/api:v2"
"$CDIMG" push --json "$WORK/d12.cdimg" "docker://$A/api" >"$WORK/a1.json"
"$CDIMG" push --json "$WORK/d02.cdimg" "docker://$A/api" >"$WORK/a2.json"
"$CDIMG" push --json "$WORK/d02.cdimg" "docker://$A/api" >"$WORK/a3.json"
for f in a1:1 a2:2 a3:2; do
	[ "$(json_get "$WORK/${f%:*}.json" 'd["referrers"], d["entries"], d["tag"], d["tag_writes"], d["added"]')" = \
		"api ${f#*:} None 0 None" ] || fail "${f%:*}: $(cat "$WORK/${f%:*}.json")"
done
curl -fsS -o /dev/null "http://$R/v2/api/manifests/sha256-${V2#sha256:}" 2>/dev/null &&
	fail "a referrers tag was written where the registry has the referrers API"
grep -q "GET /v2/api/referrers/$V2" "$WORK/api.log" || fail "the referrers API was not asked"

# A target that is not there (v3): exit 1 naming its manifest digest and copy.
V3=$(json_get "$WORK/v3/index.json" 'd["manifests"][0]["digest"]')
expect_exit 1 "$CDIMG" push "$WORK/d23.cdimg" "docker://$R/app"
grep -q "$V3" "$WORK/err.txt" || fail "the missing target is not named: $(cat "$WORK/err.txt")"
grep -q "cdimg copy" "$WORK/err.txt" || fail "no hint to copy the target: $(cat "$WORK/err.txt")"
curl -fsS -o /dev/null "http://$R/v2/app/manifests/sha256-${V3#sha256:}" 2>/dev/null &&
	fail "a failed push wrote a referrers tag"

# Usage: a tag in the destination, a .dimg.
expect_exit 2 "$CDIMG" push "$WORK/d12.cdimg" "docker://$R/app:v2"
"$CDIMG" diff -q "oci:$WORK/v1" "oci:$WORK/v2" -o "$WORK/d12.dimg"
expect_exit 1 "$CDIMG" push "$WORK/d12.dimg" "docker://$R/app"

# v3's layers in another repository's place: push puts v3's manifest first.
"$CDIMG" copy -q "oci:$WORK/v3" "docker://$R/lay:tmp"
"$CDIMG" push --json "$WORK/d23.cdimg" "docker://$R/lay" >"$WORK/p4.json"
[ "$(json_get "$WORK/p4.json" 'd["target_pushed"]')" = False ] || fail "v3 was there already"
# only/ gets v3's blobs, then loses its manifest
"$CDIMG" copy -q "oci:$WORK/v3" "docker://$R/only:x"
curl -fsS -X DELETE "http://$R/v2/only/manifests/$V3" >/dev/null || fail "cannot delete only/ v3's manifest"
curl -fsS -o /dev/null "http://$R/v2/only/manifests/$V3" 2>/dev/null \
	-H 'Accept: application/vnd.oci.image.manifest.v1+json' &&
	fail "only/ still has v3's manifest"
"$CDIMG" push --json "$WORK/d23.cdimg" "docker://$R/only" >"$WORK/p5.json"
[ "$(json_get "$WORK/p5.json" 'd["target_pushed"]')" = True ] || fail "v3's manifest was not put"
curl -fsS -o /dev/null "http://$R/v2/only/manifests/$V3" -H 'Accept: application/vnd.oci.image.manifest.v1+json' ||
	fail "only/ has no v3 manifest after the push"
echo "delta_push: ok"
