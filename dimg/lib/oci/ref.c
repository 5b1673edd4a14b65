/* Image references in Docker's normal form, and whether a name given in
 * an image layout or archive denotes the reference a user asked for. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dimg/oci.h"

int oci_ref_normal(char **out, const char *ref)
{
	const char *slash = strchr(ref, '/'), *last = strrchr(ref, '/');
	const char *domain = "docker.io", *path = ref;
	size_t dl = slash ? (size_t)(slash - ref) : 0;
	if (slash && (memchr(ref, '.', dl) || memchr(ref, ':', dl) ||
	              (dl == 9 && strncmp(ref, "localhost", 9) == 0))) {
		domain = ref;
		path = slash + 1;
	} else {
		dl = strlen(domain);
	}
	if (dl == 15 && strncmp(domain, "index.docker.io", 15) == 0) {
		domain = "docker.io";
		dl = 9;
	}
	int hub = dl == 9 && strncmp(domain, "docker.io", 9) == 0;
	const char *lib = hub && !strchr(path, '/') ? "library/" : "";
	const char *tail = last ? last + 1 : ref;
	const char *tag = strchr(tail, ':') || strchr(tail, '@') ? "" : ":latest";
	if (asprintf(out, "%.*s/%s%s%s", (int)dl, domain, lib, path, tag) < 0) {
		*out = NULL;
		return -ENOMEM;
	}
	return 0;
}

int oci_ref_match(const char *name, const char *ref)
{
	char *a = NULL, *b = NULL;
	if (!name)
		return 0;
	if (strcmp(name, ref) == 0)
		return 1;
	/* An OCI ref.name may be a bare tag: "v1" for "app:v1". */
	const char *tagsep = strrchr(ref, ':');
	if (!strchr(name, '/') && !strchr(name, ':') && tagsep && !strchr(tagsep, '/') &&
	    strcmp(tagsep + 1, name) == 0)
		return 1;
	int m = oci_ref_normal(&a, name) == 0 && oci_ref_normal(&b, ref) == 0 && strcmp(a, b) == 0;
	free(a);
	free(b);
	return m;
}
