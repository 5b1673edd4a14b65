/* cdimg load's containerd-side lookups: which image record is a delta's
 * base (by config digest), and OCI chain ids from image configs; the load
 * itself, for cdimg pull. */
#ifndef DI3FS_LOAD_H
#define DI3FS_LOAD_H

#include <stddef.h>
#include <stdint.h>

#include "dimg/types.h"

struct ctrd;

/* Largest manifest, index or config blob we read whole. */
#define LOAD_MAX_JSON (4u << 20)

/* The chain id of a config's rootfs.diff_ids (OCI image spec: ChainID(L0) =
 * DiffID(L0), ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))) into
 * out as "sha256:<hex>". -EBADMSG with err set when the config has no
 * valid diff_ids. */
int load_chain_id(const uint8_t *config, size_t n, char out[72], struct dimg_err *err);

/* The name of the first image record of c's namespace whose manifest (an
 * index's entry for this machine's linux platform) has config digest
 * config_digest; *name is malloc'd. -ENOENT if none. */
int load_find_base(struct ctrd *c, const char *config_digest, char **name, struct dimg_err *err);

/* What cdimg load loads, and where. */
struct load_args {
	const char *path, *name, *ns, *address, *snapshotter;
	int json, quiet;
	int silent; /* no report of the load on stdout (cdimg pull --json) */
};
/* The defaults: $CONTAINERD_NAMESPACE, $CONTAINERD_ADDRESS, di3fs. */
void load_args_init(struct load_args *a);
/* Loads a->path as cdimg load does (messages on stderr, the report on
 * stdout); returns the exit code. */
int load_cdimg(const struct load_args *a);

/* What the snapshotter should prefetch for the image of this config (the
 * di3fs.prefetch label): the absolute paths its start may execute, one per
 * line, malloc'd: Entrypoint[0] and Cmd[0] (and the program a "sh -c"
 * line starts), a bare name tried in each directory of the config's PATH,
 * a relative one in its WorkingDir. At most LOAD_SEEDS_MAX bytes; NULL if
 * none (no config, nothing to run). */
#define LOAD_SEEDS_MAX 3072
char *load_prefetch_seeds(const uint8_t *config, size_t n);

/* A manifest's own mediaType field (malloc'd), or NULL. */
char *load_media_type(const uint8_t *p, size_t n);

#endif
