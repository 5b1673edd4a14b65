/* Platforms: this build's, parsed from "os/arch[/variant]", read from
 * JSON, matched the way containerd matches them. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "dimg/oci.h"

/* This build's platform, named the way Go's GOARCH does. */
void oci_platform_host(struct oci_platform *p)
{
	const char *arch, *variant = "";
#if defined(__x86_64__)
	arch = "amd64";
#elif defined(__aarch64__)
	arch = "arm64";
#elif defined(__arm__)
	arch = "arm";
	variant = __ARM_ARCH >= 7 ? "v7" : __ARM_ARCH == 6 ? "v6" : "v5";
#elif defined(__i386__)
	arch = "386";
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	arch = "ppc64le";
#elif defined(__powerpc64__)
	arch = "ppc64";
#elif defined(__s390x__)
	arch = "s390x";
#elif defined(__riscv) && __riscv_xlen == 64
	arch = "riscv64";
#elif defined(__loongarch64)
	arch = "loong64";
#elif defined(__mips64) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	arch = "mips64le";
#elif defined(__mips64)
	arch = "mips64";
#else
	arch = "unknown";
#endif
	snprintf(p->os, sizeof(p->os), "linux");
	snprintf(p->arch, sizeof(p->arch), "%s", arch);
	snprintf(p->variant, sizeof(p->variant), "%s", variant);
}

int oci_platform_parse(struct oci_platform *p, const char *s)
{
	memset(p, 0, sizeof(*p));
	const char *a = strchr(s, '/');
	const char *v = a ? strchr(a + 1, '/') : NULL;
	size_t ol = a ? (size_t)(a - s) : 0, al = a ? (v ? (size_t)(v - a - 1) : strlen(a + 1)) : 0;
	if (!a || ol == 0 || al == 0 || ol >= sizeof(p->os) || al >= sizeof(p->arch) ||
	    (v &&
	     (strlen(v + 1) == 0 || strlen(v + 1) >= sizeof(p->variant) || strchr(v + 1, '/'))))
		return -EINVAL;
	memcpy(p->os, s, ol);
	memcpy(p->arch, a + 1, al);
	if (v)
		snprintf(p->variant, sizeof(p->variant), "%s", v + 1);
	return 0;
}

void oci_platform_from_json(struct oci_platform *p, struct json_object *o)
{
	const char *os = oci_jstr(o, "os"), *arch = oci_jstr(o, "architecture");
	const char *variant = oci_jstr(o, "variant");
	memset(p, 0, sizeof(*p));
	snprintf(p->os, sizeof(p->os), "%s", os ? os : "");
	snprintf(p->arch, sizeof(p->arch), "%s", arch ? arch : "");
	snprintf(p->variant, sizeof(p->variant), "%s", variant ? variant : "");
}

int oci_platform_match(const struct oci_platform *want, const struct oci_platform *have)
{
	if (strcmp(want->os, have->os) != 0 || strcmp(want->arch, have->arch) != 0)
		return 0;
	if (!want->variant[0])
		return 1;
	const char *hv = have->variant;
	if (!hv[0])
		hv = strcmp(have->arch, "arm64") == 0 ? "v8"
		     : strcmp(have->arch, "arm") == 0 ? "v7"
		                                      : "";
	return strcmp(want->variant, hv) == 0;
}

void oci_platform_str(char *out, size_t n, const struct oci_platform *p)
{
	snprintf(out, n, "%s/%s%s%s", p->os, p->arch, p->variant[0] ? "/" : "", p->variant);
}
