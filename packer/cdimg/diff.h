/* A diff written out (what `cdimg diff` does): two images or trees
 * compared, the delta encoded into a raw .dimg, or wrapped into a .cdimg
 * with both images' metadata and the target's layer recipes. */
#ifndef DI3FS_DIFF_H
#define DI3FS_DIFF_H

#include <stdint.h>

#include "cdimg.h"
#include "dimg/image.h"
#include "layers.h"
#include "packer.h"

#ifdef __cplusplus
extern "C" {
#endif

struct cdimg_diff_opts {
	struct packer_opts po; /* encoding: codecs, level, threads, dictionary */
	int raw;               /* a .dimg only (else a .cdimg: both sides images) */
	int no_layers;         /* a .cdimg without layer recipes */
	int raw_recipes;       /* recipes version 1: each entry's headers as they are */
};

struct cdimg_diff_result {
	struct packer_stats st;    /* what the encoders did */
	struct dimg_counts counts; /* what the delta changes */
	uint64_t size;             /* bytes of the output */
	int layers_recorded;       /* the .cdimg has layer recipes */
	struct layers_stats layers;
	char layers_why[DIMG_ERR_WHY_MAX]; /* why it has none */
};

void cdimg_diff_opts_default(struct cdimg_diff_opts *o);

/* Plans and writes the delta from base to target at out. For a .cdimg,
 * -EINVAL when a side is a plain directory (err says which); a layer that
 * cannot be recorded leaves the .cdimg without recipes (res says why). err
 * names what failed: out, or a file of either tree. */
int cdimg_write_diff(const char *out, const struct dimg_image *base,
                     const struct dimg_image *target, const struct cdimg_diff_opts *o,
                     struct cdimg_diff_result *res, struct dimg_err *err);

#ifdef __cplusplus
}
#endif
#endif
