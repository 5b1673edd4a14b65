/* The content store's on-disk layout, defined once for all that keep
 * files by content (libdimg's image store, the snapshotter's cache of
 * rebuilt files): DIR/sha256/<first 2 hex>/<64 hex>, named by the SHA-256
 * of the content; a new file is written under DIR/tmp/ and renamed into
 * place, so a name only ever holds complete content. */
#ifndef DIMG_CAS_H
#define DIMG_CAS_H

#include <stdint.h>
#include <sys/stat.h>

#ifdef __cplusplus
extern "C" {
#endif

struct dimg_cas;

/* "sha256/ab/ab...": 7 + 3 + 64 + NUL. */
#define DIMG_CAS_NAME_MAX 80

/* Opens (creating if needed: DIR itself, sha256/ and tmp/) the store at
 * dir, reclaiming the temporaries of writers that are gone (killed); dir
 * NULL makes a private temporary store under $TMPDIR (or /var/tmp) that
 * dimg_cas_free removes. */
int dimg_cas_open(struct dimg_cas **out, const char *dir);
void dimg_cas_free(struct dimg_cas *c);
const char *dimg_cas_dir(const struct dimg_cas *c);

/* The path of content sha256 relative to the store's dir. */
void dimg_cas_blob_name(char out[DIMG_CAS_NAME_MAX], const uint8_t sha256[32]);
/* Opens the content whose SHA-256 is sha256, read-only. -ENOENT if absent. */
int dimg_cas_open_blob(const struct dimg_cas *c, const uint8_t sha256[32], int *out_fd);
/* Deletes it; -ENOENT if absent. Open fds keep reading it. */
int dimg_cas_remove(const struct dimg_cas *c, const uint8_t sha256[32]);

/* A new empty temporary (mode 0644) under tmp/, named after its writer and locked
 * (dimg/fileio.h): *fd (read-write) holds the lock, keep it open until the
 * file is installed or discarded; *name (malloc'd, the caller frees it)
 * names it. */
int dimg_cas_tmp_create(const struct dimg_cas *c, int *fd, char **name);
/* Names temporary `name` as content sha256 (the caller vouches for it). An
 * equal copy already there is replaced, or with keep_existing kept (and
 * -EEXIST returned; the temporary stays for the caller to discard). */
int dimg_cas_tmp_install(const struct dimg_cas *c, const char *name, const uint8_t sha256[32],
                         int keep_existing);
void dimg_cas_tmp_discard(const struct dimg_cas *c, const char *name);

/* Calls visit for every content file in the store (with its lstat), and
 * odd for every other name under sha256/ (either may be NULL); stops at
 * the first nonzero return of visit and returns it. */
typedef int (*dimg_cas_visit_fn)(void *ctx, const uint8_t sha256[32], const struct stat *st);
typedef void (*dimg_cas_odd_fn)(void *ctx, const char *name);
int dimg_cas_scan(const struct dimg_cas *c, dimg_cas_visit_fn visit, dimg_cas_odd_fn odd,
                  void *ctx);

#ifdef __cplusplus
}
#endif
#endif
