#!/bin/bash
# TLS and mirrors against Debian's docker-registry: a CA made here, found
# through certs.d (HOST:PORT/ca.crt) or --cert-dir, or skipped with
# --tls-verify=false; client certificates (*.cert + *.key); containerd's
# hosts.toml mirrors tried in order for pulls (a dead one skipped, caps
# honoured), pushes going to the registry; a hosts.toml we cannot read
# refused with its line.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/registry.inc"

make_ca "$WORK/ca" 127.0.0.1 localhost
reg_start tls "" "  tls:
    certificate: $WORK/ca/server.crt
    key: $WORK/ca/server.key"
S=127.0.0.1:$PORT_tls
make_image "$WORK/img" 200

# an unknown CA is refused (no fallback to http: the handshake worked)
expect_exit 1 $REGCLI push "$WORK/img" "$S/team/app:v1"
grep -q "certificate" "$WORK/err.txt" || fail "unknown CA: $(cat "$WORK/err.txt")"
mkdir -p "$DI3FS_CERTS_D/$S"
cp "$WORK/ca/ca.crt" "$DI3FS_CERTS_D/$S/ca.crt"
$REGCLI push "$WORK/img" "$S/team/app:v1" >/dev/null || fail "push with certs.d"
$REGCLI pull "$S/team/app:v1" "$WORK/p1" >/dev/null || fail "pull with certs.d"
same_blobs "$WORK/p1" "$WORK/img"
mkdir -p "$DI3FS_CERTS_D/localhost:$PORT_tls"
cp "$WORK/ca/ca.crt" "$DI3FS_CERTS_D/localhost:$PORT_tls/"
$REGCLI manifest "localhost:$PORT_tls/team/app:v1" >/dev/null || fail "certs.d by host name"
rm -r "$DI3FS_CERTS_D/$S"
expect_exit 1 $REGCLI manifest "$S/team/app:v1"
mkdir -p "$WORK/certdir"
cp "$WORK/ca/ca.crt" "$WORK/certdir/"
$REGCLI --cert-dir "$WORK/certdir" manifest "$S/team/app:v1" >/dev/null || fail "--cert-dir"
$REGCLI --tls-verify=false manifest "$S/team/app:v1" >/dev/null || fail "--tls-verify=false"
$REGCLI --transport --tls-verify=false pull "$S/team/app:v1" "$WORK/p2" >/dev/null ||
	fail "transport, --tls-verify=false"
skopeo inspect --raw --cert-dir "$WORK/certdir" "docker://$S/team/app:v1" >/dev/null ||
	fail "skopeo with the same CA"

# client certificates
openssl req -newkey rsa:2048 -nodes -subj /CN=di3fs-client -keyout "$WORK/client.key" \
	-out "$WORK/client.csr" 2>/dev/null
openssl x509 -req -in "$WORK/client.csr" -CA "$WORK/ca/ca.crt" -CAkey "$WORK/ca/ca.key" \
	-CAcreateserial -days 2 -out "$WORK/client.cert" 2>/dev/null
reg_start mtls "" "  tls:
    certificate: $WORK/ca/server.crt
    key: $WORK/ca/server.key
    clientcas: [$WORK/ca/ca.crt]"
M=127.0.0.1:$PORT_mtls
mkdir -p "$DI3FS_CERTS_D/$M"
cp "$WORK/ca/ca.crt" "$DI3FS_CERTS_D/$M/"
expect_exit 1 $REGCLI push "$WORK/img" "$M/team/app:v1"
cp "$WORK/client.cert" "$DI3FS_CERTS_D/$M/"
expect_exit 1 $REGCLI push "$WORK/img" "$M/team/app:v1"
grep -q "client.cert: client certificate without client.key" "$WORK/err.txt" ||
	fail "a .cert without its .key: $(cat "$WORK/err.txt")"
cp "$WORK/client.key" "$DI3FS_CERTS_D/$M/"
$REGCLI push "$WORK/img" "$M/team/app:v1" >/dev/null || fail "push with a client certificate"

# mirrors: hosts.toml for the registry, a dead mirror first, then one that
# has the image; pulls come from the mirror, pushes go to the registry
reg_start origin
reg_start mirror
O=127.0.0.1:$PORT_origin
MI=127.0.0.1:$PORT_mirror
DEAD=$(free_port)
$REGCLI push "$WORK/img" "$O/team/app:v1" >/dev/null
$REGCLI push "$WORK/img" "$MI/team/app:v1" >/dev/null
mkdir -p "$DI3FS_HOSTS_D/$O"
cat >"$DI3FS_HOSTS_D/$O/hosts.toml" <<EOT
# containerd's format
server = "http://$O"

[host."http://127.0.0.1:$DEAD"]
  capabilities = ["pull", "resolve"]

[host."http://$MI"]
  capabilities = ["pull", "resolve"]  # both
EOT
mark_o=$(wc -l <"$WORK/origin/log")
mark_m=$(wc -l <"$WORK/mirror/log")
$REGCLI pull "$O/team/app:v1" "$WORK/p3" >/dev/null || fail "pull through mirrors"
same_blobs "$WORK/p3" "$WORK/img"
[ "$(tail -n +$((mark_o + 1)) "$WORK/origin/log" | grep -c '"GET /v2/')" -eq 0 ] ||
	fail "the registry was asked though a mirror had it"
[ "$(tail -n +$((mark_m + 1)) "$WORK/mirror/log" | grep -c '"GET /v2/team/app/')" -ge 3 ] ||
	fail "the mirror was not asked"
$REGCLI push "$WORK/img" "$O/team/new:v1" >/dev/null || fail "push with mirrors"
grep -q '"PUT /v2/team/new/manifests/v1' "$WORK/origin/log" || fail "push did not go to the registry"
! grep -q '/v2/team/new/' "$WORK/mirror/log" || fail "push went to a mirror"
# a pull-only mirror: the tag is resolved by the registry, the rest mirrored
sed -i 's/\["pull", "resolve"\]  # both/["pull"]/' "$DI3FS_HOSTS_D/$O/hosts.toml"
mark_o=$(wc -l <"$WORK/origin/log")
$REGCLI pull "$O/team/app:v1" "$WORK/p4" >/dev/null || fail "pull, pull-only mirror"
[ "$(tail -n +$((mark_o + 1)) "$WORK/origin/log" | grep -c '"GET /v2/')" -eq 1 ] ||
	fail "the registry should resolve the tag only"
# what we cannot read is refused, with its line
printf 'server = "http://%s"\n[host."http://%s"]\n  header = {x = "y"}\n' "$O" "$MI" \
	>"$DI3FS_HOSTS_D/$O/hosts.toml"
expect_exit 1 $REGCLI pull "$O/team/app:v1" "$WORK/p5"
grep -q "$O/hosts.toml: line 3: key 'header' is not read here" "$WORK/err.txt" ||
	fail "bad hosts.toml: $(cat "$WORK/err.txt")"
echo "registry_tls_mirrors: ok"
