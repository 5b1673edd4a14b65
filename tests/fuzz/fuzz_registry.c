/* libFuzzer target for what a registry (or its configuration) hands the
 * client: the first byte picks the reader — a WWW-Authenticate value, a
 * token answer, a hosts.toml, an index to pick a platform from — and the
 * rest is its input. Each must answer garbage with an error, never read
 * past its input, and hand back only what it promises (a token fit for a
 * header, a selected digest from the index). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "registry-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_challenge(const char *s)
{
	struct reg_challenge c;

	if (reg_challenge_parse(&c, s) == 0) {
		if (strcmp(c.scheme, "bearer") == 0 && !c.realm)
			abort();
		reg_challenge_clear(&c);
	}
}

static void fuzz_token(const uint8_t *p, size_t n)
{
	char *t = NULL;
	int64_t ttl;

	if (reg_token_parse(p, n, &t, &ttl) == 0) {
		for (const char *c = t; *c; c++)
			if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f)
				abort();
		if (ttl <= 0)
			abort();
	}
	free(t);
}

static void fuzz_hosts(const char *s, size_t n)
{
	struct reg_hosts h;
	char why[160];

	if (reg_hosts_parse(&h, s, n, "/x/hosts.toml", why, sizeof(why)) == 0) {
		for (size_t i = 0; i < h.n; i++)
			if (!h.h[i].url || h.h[i].nca > REG_CA_MAX)
				abort();
		reg_hosts_clear(&h);
	} else if (!why[0]) {
		abort();
	}
}

static void fuzz_index(const uint8_t *p, size_t n)
{
	static const char *const platforms[] = {"linux/amd64", "linux/arm/v7", "linux/arm64"};
	struct dimg_err err = {0};
	uint8_t d[32];
	uint64_t size;

	for (size_t i = 0; i < 3; i++) {
		dimg_err_clear(&err);
		(void)reg_index_select(p, n, platforms[i], d, &size, &err);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;

	if (size < 1)
		return 0;
	s = malloc(size);
	if (!s)
		return 0;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	switch (data[0] % 4) {
	case 0:
		fuzz_challenge(s);
		break;
	case 1:
		fuzz_token(data + 1, size - 1);
		break;
	case 2:
		fuzz_hosts(s, size - 1);
		break;
	default:
		fuzz_index(data + 1, size - 1);
		break;
	}
	free(s);
	return 0;
}
