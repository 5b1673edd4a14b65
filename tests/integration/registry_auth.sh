#!/bin/bash
# Registry auth against Debian's docker-registry: htpasswd (HTTP basic) and
# token auth (tests/tools/tokenserver.py, RS256 JWTs the registry checks
# against its rootcertbundle). Credentials from --creds, --authfile,
# $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json,
# ~/.docker/config.json (auths, credHelpers over credsStore, repository-
# scoped keys); wrong ones fail at once with "unauthorized" naming the
# registry, in a request or two, and are never printed.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/registry.inc"

htpasswd -Bbn alice secret1 >"$WORK/htpasswd"
reg_start basic "auth:
  htpasswd:
    realm: di3fs-test
    path: $WORK/htpasswd"
B=127.0.0.1:$PORT_basic
make_image "$WORK/img" 200
b64() { printf '%s' "$1" | base64 -w0; }

# requests_since MARK REGISTRY: access-log lines after line MARK
requests_since() {
	tail -n +"$(($1 + 1))" "$WORK/$2/log" | grep -c '"[A-Z]* /v2/' || true
}

# basic: --creds works; none or wrong ones fail fast, and say so
$REGCLI --creds alice:secret1 push "$WORK/img" "$B/team/app:v1" >/dev/null || fail "push with --creds"
$REGCLI --creds alice:secret1 push "$WORK/img" "$B/other/app:v1" >/dev/null
expect_exit 1 $REGCLI pull "$B/team/app:v1" "$WORK/p0"
grep -q "regcli: $B: unauthorized (no credentials for it)" "$WORK/err.txt" || fail "$(cat "$WORK/err.txt")"
mark=$(wc -l <"$WORK/basic/log")
expect_exit 1 $REGCLI --creds alice:hunter2-wrong pull "$B/team/app:v1" "$WORK/p0"
grep -q "regcli: $B: unauthorized" "$WORK/err.txt" || fail "wrong creds: $(cat "$WORK/err.txt")"
! grep -q hunter2 "$WORK/err.txt" "$WORK/out.txt" || fail "the password was printed"
[ "$(requests_since "$mark" basic)" -le 2 ] || fail "wrong credentials: $(requests_since "$mark" basic) requests"

# auth files, in containers-auth.json's order
printf '{"auths":{"%s":{"auth":"%s"}}}' "$B" "$(b64 alice:secret1)" >"$WORK/auth.json"
printf '{"auths":{"%s":{"auth":"%s"}}}' "$B" "$(b64 alice:nope)" >"$WORK/wrong.json"
$REGCLI --authfile "$WORK/auth.json" pull "$B/team/app:v1" "$WORK/p1" >/dev/null || fail "--authfile"
same_blobs "$WORK/p1" "$WORK/img"
REGISTRY_AUTH_FILE=$WORK/auth.json $REGCLI pull "$B/team/app:v1" "$WORK/p1" >/dev/null ||
	fail "REGISTRY_AUTH_FILE"
mkdir -p "$WORK/xdg/containers" "$HOME/.docker" "$WORK/bin"
cp "$WORK/auth.json" "$WORK/xdg/containers/auth.json"
XDG_RUNTIME_DIR=$WORK/xdg $REGCLI pull "$B/team/app:v1" "$WORK/p1" >/dev/null || fail "XDG_RUNTIME_DIR"
printf '{"auths":{"https://%s/v1/":{"auth":"%s"}}}' "$B" "$(b64 alice:secret1)" >"$HOME/.docker/config.json"
$REGCLI pull "$B/team/app:v1" "$WORK/p1" >/dev/null || fail "~/.docker/config.json (URL key)"
# the first file that knows the registry wins, even when it is wrong
REGISTRY_AUTH_FILE=$WORK/wrong.json expect_exit 1 $REGCLI pull "$B/team/app:v1" "$WORK/p1"
# a repository-scoped key beats the registry's
printf '{"auths":{"%s":{"auth":"%s"},"%s/team":{"auth":"%s"}}}' "$B" "$(b64 alice:nope)" "$B" \
	"$(b64 alice:secret1)" >"$WORK/scoped.json"
$REGCLI --authfile "$WORK/scoped.json" pull "$B/team/app:v1" "$WORK/p1" >/dev/null || fail "scoped key"
expect_exit 1 $REGCLI --authfile "$WORK/scoped.json" pull "$B/other/app:v1" "$WORK/p1"

# credential helpers: credHelpers[host] over credsStore; "not found" is no credentials
for h in good:secret1 bad:nope; do
	cat >"$WORK/bin/docker-credential-di3fs${h%%:*}" <<EOS
#!/bin/sh
[ "\$1" = get ] || exit 1
read -r server
echo "${h%%:*} \$server" >>"$WORK/helper.log"
printf '{"ServerURL":"%s","Username":"alice","Secret":"%s"}' "\$server" "${h#*:}"
EOS
done
printf '#!/bin/sh\necho "credentials not found in native keychain"\nexit 1\n' >"$WORK/bin/docker-credential-di3fsnone"
chmod +x "$WORK"/bin/*
export PATH=$WORK/bin:$PATH
printf '{"credsStore":"di3fsbad","credHelpers":{"%s":"di3fsgood"}}' "$B" >"$HOME/.docker/config.json"
$REGCLI pull "$B/team/app:v1" "$WORK/p2" >/dev/null || fail "credHelpers"
[ "$(cat "$WORK/helper.log")" = "good $B" ] || fail "helper log: $(cat "$WORK/helper.log")"
printf '{"credsStore":"di3fsbad"}' >"$HOME/.docker/config.json"
expect_exit 1 $REGCLI pull "$B/team/app:v1" "$WORK/p2"
grep -q "^bad $B" "$WORK/helper.log" || fail "credsStore not asked"
printf '{"credsStore":"di3fsnone"}' >"$HOME/.docker/config.json"
expect_exit 1 $REGCLI pull "$B/team/app:v1" "$WORK/p2"
grep -q "unauthorized (no credentials for it)" "$WORK/err.txt" || fail "helper without: $(cat "$WORK/err.txt")"
rm "$HOME/.docker/config.json"

# token auth
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=di3fs-token-signer \
	-keyout "$WORK/tok.key" -out "$WORK/tok.crt" 2>/dev/null
TP=$(free_port)
$PY3 "$TOOLS/tokenserver.py" --port "$TP" --key "$WORK/tok.key" --cert "$WORK/tok.crt" \
	--issuer di3fs-test --service di3fs-registry --user alice:secret1 --log "$WORK/token.log" &
PIDS="$PIDS $!"
wait_port "$TP"
reg_start tok "auth:
  token:
    realm: http://127.0.0.1:$TP/token
    service: di3fs-registry
    issuer: di3fs-test
    rootcertbundle: $WORK/tok.crt"
T=127.0.0.1:$PORT_tok
$REGCLI --creds alice:secret1 push "$WORK/img" "$T/team/app:v1" >/dev/null || fail "token push"
# a token a scope, reused: pull for the HEADs, pull+push for the uploads
[ "$(grep -c . "$WORK/token.log")" -eq 2 ] || fail "tokens not reused: $(cat "$WORK/token.log")"
grep -q "^user=alice service=di3fs-registry scope=repository:team/app:pull,push$" "$WORK/token.log" ||
	fail "push scope: $(cat "$WORK/token.log")"
$REGCLI --transport --creds alice:secret1 pull "$T/team/app:v1" "$WORK/p3" >/dev/null || fail "token pull"
same_blobs "$WORK/p3" "$WORK/img"
: >"$WORK/token.log"
mark=$(wc -l <"$WORK/tok/log")
expect_exit 1 $REGCLI --creds alice:hunter2-wrong pull "$T/team/app:v1" "$WORK/p4"
grep -q "regcli: $T: unauthorized (the token server refused the credentials)" "$WORK/err.txt" ||
	fail "token, wrong creds: $(cat "$WORK/err.txt")"
! grep -q hunter2 "$WORK/err.txt" "$WORK/token.log" || fail "the password was printed"
[ "$(grep -c . "$WORK/token.log")" -eq 1 ] || fail "token requests: $(cat "$WORK/token.log")"
[ "$(requests_since "$mark" tok)" -le 1 ] || fail "wrong credentials: $(requests_since "$mark" tok) requests"
# anonymous: public/ may be pulled, nothing else
$REGCLI --creds alice:secret1 push "$WORK/img" "$T/public/app:v1" >/dev/null
$REGCLI pull "$T/public/app:v1" "$WORK/p5" >/dev/null || fail "anonymous pull of public/"
expect_exit 1 $REGCLI pull "$T/team/app:v1" "$WORK/p6"
grep -q "regcli: $T: unauthorized" "$WORK/err.txt" || fail "anonymous: $(cat "$WORK/err.txt")"
# a mount asks pull on the source and push+pull on the target, in one token
LAYER=$(json_get "$WORK/p3/blobs/sha256/$(json_get "$WORK/p3/index.json" 'd["manifests"][0]["digest"][7:]')" 'd["layers"][0]["digest"]')
[ "$($REGCLI --creds alice:secret1 mount "$T/team/copy@$LAYER" team/app)" = mounted ] || fail "token mount"
grep -q "scope=repository:team/copy:pull,push scope=repository:team/app:pull$" "$WORK/token.log" ||
	fail "mount scopes: $(cat "$WORK/token.log")"
echo "registry_auth: ok"
