/* The registry client's parsers on their own: WWW-Authenticate challenges,
 * token answers, hosts.toml, base64, index platform selection, URLs. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "registry-internal.h"

static void test_challenge(void)
{
	struct reg_challenge c;

	CHECK_RC(reg_challenge_parse(
	    &c,
	    "Bearer realm=\"https://auth.example/token\",service=\"reg.example\","
	    "scope=\"repository:a/b:pull,push repository:c:pull\",error=\"insufficient_scope\""));
	CHECK(strcmp(c.scheme, "bearer") == 0);
	CHECK(strcmp(c.realm, "https://auth.example/token") == 0);
	CHECK(strcmp(c.service, "reg.example") == 0);
	CHECK(strcmp(c.scope, "repository:a/b:pull,push repository:c:pull") == 0);
	reg_challenge_clear(&c);
	/* tokens unquoted, odd case, escapes, a second challenge after */
	CHECK_RC(reg_challenge_parse(
	    &c, "bEaReR  realm=http://h/t , service=\"s\\\"q\", Basic realm=x"));
	CHECK(strcmp(c.realm, "http://h/t") == 0 && strcmp(c.service, "s\"q") == 0 && !c.scope);
	reg_challenge_clear(&c);
	CHECK_RC(reg_challenge_parse(&c, "Basic realm=\"Registry Realm\""));
	CHECK(strcmp(c.scheme, "basic") == 0);
	reg_challenge_clear(&c);
	CHECK(reg_challenge_parse(&c, "Bearer service=\"s\"") == -EBADMSG); /* no realm */
	CHECK(reg_challenge_parse(&c, "Bearer realm=\"unterminated") == -EBADMSG);
	CHECK(reg_challenge_parse(&c, "Negotiate abc") == -EBADMSG);
	CHECK(reg_challenge_parse(&c, "") == -EBADMSG);
}

static void test_scopes(void)
{
	const char *ours = "repository:a/b:pull,push repository:c:pull";
	static const char *const cases[][2] = {
	    {"repository:a/b:push,pull repository:c:pull", ""},
	    {"repository:c:pull", ""},
	    {"repository:a/b:delete", "repository:a/b:delete"},
	    {"repository:c:push repository:a/b:pull", "repository:c:push"},
	    {"registry:catalog:*", "registry:catalog:*"},
	    {"repository:a:pull", "repository:a:pull"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *m = reg_scopes_missing(ours, cases[i][0]);
		CHECK(m && strcmp(m, cases[i][1]) == 0);
		free(m);
	}
}

static void test_token(void)
{
	const char *a = "{\"token\":\"abc.def.ghi\",\"expires_in\":300}";
	const char *b = "{\"access_token\":\"xyz\"}";
	const char *bad = "{\"token\":\"has space\"}";
	const char *inj = "{\"token\":\"a\\r\\nX-Evil: 1\"}";
	char *t;
	int64_t ttl;

	CHECK_RC(reg_token_parse(a, strlen(a), &t, &ttl));
	CHECK(strcmp(t, "abc.def.ghi") == 0 && ttl == 300);
	free(t);
	CHECK_RC(reg_token_parse(b, strlen(b), &t, &ttl));
	CHECK(strcmp(t, "xyz") == 0 && ttl == 60); /* the spec's default */
	free(t);
	CHECK(reg_token_parse(bad, strlen(bad), &t, &ttl) == -EBADMSG && !t);
	CHECK(reg_token_parse(inj, strlen(inj), &t, &ttl) == -EBADMSG && !t);
	CHECK(reg_token_parse("{}", 2, &t, &ttl) == -EBADMSG);
	CHECK(reg_token_parse("nope", 4, &t, &ttl) == -EBADMSG);
}

static int hosts(struct reg_hosts *h, const char *text, char *why)
{
	return reg_hosts_parse(h, text, strlen(text), "/etc/containerd/certs.d/r:5000/hosts.toml",
	                       why, 160);
}

static void test_hosts(void)
{
	struct reg_hosts h;
	char why[160];

	CHECK_RC(hosts(&h,
	               "# mirrors\nserver = \"https://r:5000\"\r\nskip_verify = true\n\n"
	               "[host.\"http://m1:5001\"]\n  capabilities = [\"pull\", \"resolve\",]\n"
	               "  ca = \"m1.crt\"  # relative\n"
	               "[ host . 'https://m2/prefix' ]\n  override_path = true\n"
	               "  ca = [\"/a.crt\", \"/b.crt\"]\n",
	               why));
	CHECK(strcmp(h.server.url, "https://r:5000") == 0 && h.server.skip_verify == 1);
	CHECK(h.server.caps == REG_CAP_ALL && h.n == 2);
	CHECK(strcmp(h.h[0].url, "http://m1:5001") == 0);
	CHECK(h.h[0].caps == (REG_CAP_PULL | REG_CAP_RESOLVE) && h.h[0].skip_verify == -1);
	CHECK(h.h[0].nca == 1 &&
	      strcmp(h.h[0].ca[0], "/etc/containerd/certs.d/r:5000/m1.crt") == 0);
	CHECK(strcmp(h.h[1].url, "https://m2/prefix") == 0 && h.h[1].override_path == 1);
	CHECK(h.h[1].nca == 2 && h.h[1].caps == REG_CAP_ALL);
	reg_hosts_clear(&h);

	static const struct {
		const char *text, *why;
	} bad[] = {
	    {"[host.\"x\"]\nheader = 1\n", "line 2: key 'header' is not read here"},
	    {"[host.\"x\"]\nserver = \"y\"\n", "line 2: key 'server' is not read here"},
	    {"[host.\"x\".header]\n", "line 1: ']' was expected"},
	    {"[plugins]\n", "line 1: only [host.\"URL\"] tables"},
	    {"[[host]]\n", "line 1: arrays of tables"},
	    {"capabilities = [\"pull\", \"fly\"]\n", "line 1: unknown capability 'fly'"},
	    {"capabilities = [\"pull\",\n\"push\"]\n", "line 1: an array does not end on its line"},
	    {"server = \"a\"\nserver = \"b\"\n", "line 2: key 'server' is set twice"},
	    {"server = \"\"\"x\"\"\"\n", "line 1: multi-line strings"},
	    {"server = \"a\\qb\"\n", "line 1: unsupported escape"},
	    {"server = \"open\n", "line 1: a string does not end on its line"},
	    {"skip_verify = yes\n", "line 1: true or false was expected"},
	    {"server = \"a\" trailing\n", "line 1: unexpected text"},
	    {"[host.\"x\"]\n[host.\"x\"]\n", "line 2: host \"x\" is given twice"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = hosts(&h, bad[i].text, why);
		if (rc != -EINVAL || strncmp(why, bad[i].why, strlen(bad[i].why)) != 0) {
			fprintf(stderr, "hosts.toml case %zu: %d '%s'\n", i, rc, why);
			exit(1);
		}
	}
}

static void test_b64(void)
{
	char *out;
	size_t n;

	CHECK_RC(reg_b64_decode(&out, &n, "YWxpY2U6c2VjcmV0MQ=="));
	CHECK(n == 13 && strcmp(out, "alice:secret1") == 0);
	free(out);
	CHECK_RC(reg_b64_decode(&out, &n, "YQ"));
	CHECK(n == 1 && out[0] == 'a');
	free(out);
	CHECK(reg_b64_decode(&out, &n, "YW*j") == -EINVAL);
	CHECK(reg_b64_decode(&out, &n, "Y") == -EINVAL);
}

static void test_index(void)
{
	const char *idx =
	    "{\"schemaVersion\":2,\"manifests\":["
	    "{\"mediaType\":\"" OCI_MT_MANIFEST "\",\"digest\":\"sha256:"
	    "1111111111111111111111111111111111111111111111111111111111111111\",\"size\":10,"
	    "\"platform\":{\"os\":\"linux\",\"architecture\":\"arm\",\"variant\":\"v6\"}},"
	    "{\"mediaType\":\"" OCI_MT_MANIFEST "\",\"digest\":\"sha256:"
	    "2222222222222222222222222222222222222222222222222222222222222222\",\"size\":20,"
	    "\"platform\":{\"os\":\"linux\",\"architecture\":\"arm\"}},"
	    "{\"mediaType\":\"" OCI_MT_MANIFEST "\",\"digest\":\"sha256:"
	    "3333333333333333333333333333333333333333333333333333333333333333\",\"size\":30,"
	    "\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}}]}";
	struct dimg_err err = {0};
	uint8_t d[32];
	uint64_t size;

	CHECK_RC(
	    reg_index_select((const uint8_t *)idx, strlen(idx), "linux/arm/v7", d, &size, &err));
	CHECK(d[0] == 0x22 && size == 20); /* arm without a variant is v7 */
	CHECK_RC(
	    reg_index_select((const uint8_t *)idx, strlen(idx), "linux/arm/v6", d, &size, &err));
	CHECK(d[0] == 0x11 && size == 10);
	CHECK_RC(
	    reg_index_select((const uint8_t *)idx, strlen(idx), "linux/amd64", d, &size, &err));
	CHECK(d[0] == 0x33);
	CHECK(reg_index_select((const uint8_t *)idx, strlen(idx), "linux/s390x", d, &size, &err) ==
	      -ENOENT);
	CHECK(strstr(err.why, "linux/arm/v6, linux/arm, linux/amd64") != NULL);
	dimg_err_clear(&err);
	CHECK(reg_index_select((const uint8_t *)"{}", 2, "linux/amd64", d, &size, &err) ==
	      -EBADMSG);
	dimg_err_clear(&err);
	CHECK(reg_index_select((const uint8_t *)idx, strlen(idx), "linux", d, &size, &err) ==
	      -EINVAL);
}

static void test_urls(void)
{
	char *u = reg_url_resolve("http://r:5000/v2/a/blobs/uploads/",
	                          "/v2/a/blobs/uploads/x?_state=A%3D");
	CHECK(u && strcmp(u, "http://r:5000/v2/a/blobs/uploads/x?_state=A%3D") == 0);
	free(u);
	u = reg_url_resolve("http://r:5000/v2/x", "https://s.example/b?sig=a=b");
	CHECK(u && strcmp(u, "https://s.example/b?sig=a=b") == 0); /* kept to the byte */
	free(u);
	CHECK(reg_url_resolve("http://r/v2/x", "file:///etc/passwd") == NULL);
	CHECK(reg_url_resolve("http://r/v2/x", "ftp://r/x") == NULL);
	CHECK(reg_url_same_origin("https://R:443/a", "https://r/b"));
	CHECK(reg_url_same_origin("http://127.0.0.1:5000/a", "http://127.0.0.1:5000"));
	CHECK(!reg_url_same_origin("http://r/a", "https://r/a"));
	CHECK(!reg_url_same_origin("http://r:5000/a", "http://r:5001/a"));
	CHECK(!reg_url_same_origin("http://localhost:5000/", "http://127.0.0.1:5000/"));
	CHECK(reg_check_repo("library/nginx", NULL) == 0);
	CHECK(reg_check_repo("a/b-c.d_e/f", NULL) == 0);
	CHECK(reg_check_repo("Upper", NULL) == -EINVAL);
	CHECK(reg_check_repo("a//b", NULL) == -EINVAL);
	CHECK(reg_check_repo("../x", NULL) == -EINVAL);
	CHECK(reg_check_repo("a/b?x", NULL) == -EINVAL);
	CHECK(reg_check_ref("v1.2_3-x", NULL) == 0);
	CHECK(reg_check_ref("-v1", NULL) == -EINVAL);
	CHECK(reg_check_ref("a/b", NULL) == -EINVAL);
	CHECK(reg_check_ref("sha256:abc", NULL) == -EINVAL);
}

int main(void)
{
	test_challenge();
	test_scopes();
	test_token();
	test_hosts();
	test_b64();
	test_index();
	test_urls();
	printf("test_registry: ok\n");
	return 0;
}
