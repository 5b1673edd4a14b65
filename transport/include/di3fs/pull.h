/* cdimg pull, the registry side: the deltas a repository holds (artifacts
 * pushed by cdimg push, found as referrers of their target images: the
 * referrers API, else the referrers tag schema), and one of them fetched
 * and rebuilt into the .cdimg that was pushed, byte for byte (docs/FORMAT.md
 * "Delta artifact in a registry"). What the device has and which path is
 * cheapest are the caller's (ctr-tools/cmd_pull.c, packer/plan). Nothing
 * the registry says is trusted: every artifact is checked field by field
 * and dropped (counted) when malformed, every blob against its digest, and
 * the rebuilt .cdimg must give the artifact manifest's digest again. */
#ifndef DI3FS_PULL_H
#define DI3FS_PULL_H

#include <stddef.h>
#include <stdint.h>

#include "di3fs/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How many artifacts one target may list before the rest are ignored. */
#define XPULL_MAX_REFERRERS 256

/* One delta artifact of the repository. */
struct xpull_delta {
	char digest[OCI_DIGEST_LEN];  /* the artifact manifest */
	char subject[OCI_DIGEST_LEN]; /* its target image's manifest */
	char base_config[OCI_DIGEST_LEN], target_config[OCI_DIGEST_LEN];
	uint8_t base_tree[32], target_tree[32];
	uint64_t cost; /* bytes to fetch: the artifact manifest, the .dimg, the recipes */
};

/* The image a pull asks for: its platform's manifest and config, and its
 * layers (what a plain pull would fetch). */
struct xpull_target {
	struct xport_manifest man;
	char config_digest[OCI_DIGEST_LEN];
	struct oci_desc *layers; /* media types NULL (borrowed strings dropped) */
	size_t nlayers;
	uint64_t layers_size;
};
void xpull_target_clear(struct xpull_target *t);

struct xpull;

/* A puller for img (docker://HOST/REPO[:TAG|@DIGEST]) with o's registry
 * options; o->cache_dir holds resumable downloads (NULL: cdimg copy's). */
int xpull_open(struct xpull **out, const struct xport_name *img, const struct xport_opts *o,
               struct dimg_err *err);
void xpull_close(struct xpull *p);

/* Resolves the name to o->platform's manifest (this machine's by default). */
int xpull_target(struct xpull *p, struct xpull_target *t, struct dimg_err *err);

/* Adds the deltas whose target is the manifest subject ("sha256:...") to
 * p's list (each once). Returns how many it added. */
int xpull_find(struct xpull *p, const char *subject, struct dimg_err *err);
/* The same for the manifest of each of the repository's tags (at most
 * max_tags, referrers tags left out), resolved to o->platform. */
int xpull_find_all(struct xpull *p, unsigned max_tags, struct dimg_err *err);
/* The deltas found so far; malformed artifacts skipped (*skipped). */
const struct xpull_delta *xpull_deltas(const struct xpull *p, size_t *n, size_t *skipped);

/* Downloads delta d (resuming a partial one) and rebuilds its .cdimg at
 * out (written under a temporary name, renamed; an existing out is
 * replaced only when it is not that delta). -EBADMSG naming
 * HOST/REPO@DIGEST when the artifact, a blob or the rebuilt .cdimg does
 * not match. *fetched: bytes that came over the network. */
int xpull_fetch(struct xpull *p, const struct xpull_delta *d, const char *out, uint64_t *fetched,
                struct dimg_err *err);

/* "HOST/REPO" of the puller. */
const char *xpull_repo_name(const struct xpull *p);

#ifdef __cplusplus
}
#endif
#endif
