/* cdimg push: a .cdimg delta into a registry as an OCI 1.1 artifact
 * referring to its target image (docs/FORMAT.md "Delta artifact in a
 * registry"). The target image must be in the repository (its manifest,
 * or at least its layers: then its config and manifest, which the .cdimg
 * carries, are put first). The artifact's blobs (the empty config, the
 * .dimg, the layer recipes) go where the registry lacks them, the artifact
 * manifest by digest, and the referrers are kept: by the registry where it
 * answers the referrers API, else in the referrers tag schema's index
 * (tag sha256-<hex of the target manifest's digest>), read, changed,
 * written, read back and written again while another pusher's write lost
 * our entry (bounded). */
#ifndef DI3FS_PUSH_H
#define DI3FS_PUSH_H

#include <stdint.h>

#include "di3fs/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How many times the referrers tag is written at most. */
#define XPUSH_TAG_TRIES 8
/* How long after writing it the referrers tag is read back, in ms. */
#define XPUSH_SETTLE_MS 300

struct xpush_result {
	char manifest_digest[OCI_DIGEST_LEN]; /* the artifact manifest */
	uint64_t manifest_size;
	char subject_digest[OCI_DIGEST_LEN]; /* the target image's manifest */
	char host[256];                      /* the registry, as named */
	char repo[256];
	int target_pushed;     /* the registry had the target's layers only: its
	                          config (if missing) and manifest were put */
	int referrers_api;     /* 1: the registry lists referrers itself */
	char tag[80];          /* the referrers tag, "" with the API */
	unsigned tag_writes;   /* PUTs of that tag (0: it listed the delta already) */
	unsigned entries;      /* referrers of the target listed after the push */
	int added;             /* 1 added, 0 listed before this push (tag schema);
	                          -1 not known (the referrers API) */
	unsigned blobs_pushed; /* artifact blobs sent */
	unsigned blobs_existing;
	uint64_t bytes_pushed;
};

/* Pushes the .cdimg at path into dst (docker://HOST/REPO; its tag is
 * ignored, a digest is -EINVAL) with o's registry options (credentials, TLS, progress
 * per blob). -ENOENT when the repository has neither the target's manifest
 * nor all its layers (err names HOST/REPO@DIGEST and says to copy the
 * image there first); -EINVAL for a .dimg (it names no target image);
 * errors of the .cdimg as cdimg_open gives them; registry errors name the
 * registry and blob. */
int xpush_delta(const char *path, const struct xport_name *dst, const struct xport_opts *o,
                struct xpush_result *res, struct dimg_err *err);

#ifdef __cplusplus
}
#endif
#endif
