/* The oci:, oci-archive: and docker-archive: backends: one table each
 * over the shared layout reader (laysrc.c) and writer (laydst.c). */
#include "layout.h"

static int lo_open(struct xport *x, enum laydst_mode mode, int is_dir, struct dimg_err *err)
{
	return x->write ? laydst_open(x, mode, err) : laysrc_open(x, is_dir, err);
}

static int oci_open(struct xport *x, struct dimg_err *err)
{
	return lo_open(x, LAYDST_DIR, 1, err);
}

static int ociarchive_open(struct xport *x, struct dimg_err *err)
{
	return lo_open(x, LAYDST_OCI_TAR, 0, err);
}

static int dockerarchive_open(struct xport *x, struct dimg_err *err)
{
	return lo_open(x, LAYDST_DOCKER_TAR, 0, err);
}

static void lo_close(struct xport *x)
{
	if (x->write)
		laydst_close(x->priv);
	else
		laysrc_close(x->priv);
}

static int lo_has_blob(struct xport *x, const struct oci_desc *d, struct dimg_err *err)
{
	return x->write ? laydst_has_blob(x, d, err) : laysrc_has_blob(x, d, err);
}

static int lo_put_manifest(struct xport *x, const struct xport_manifest *m, struct dimg_err *err)
{
	return laydst_put_manifest_ref(x, m, NULL, err);
}

#define LAYOUT_OPS(k, openfn)                                                                      \
	{                                                                                          \
		.kind = k, .open = openfn, .close = lo_close, .get_manifest = laysrc_get_manifest, \
		.get_manifest_digest = laysrc_get_digest, .has_blob = lo_has_blob,                 \
		.get_blob = laysrc_get_blob, .put_blob = laydst_put_blob, .mount_blob = NULL,      \
		.put_manifest = lo_put_manifest, .commit = laydst_commit,                          \
		.put_manifest_ref = laydst_put_manifest_ref, .note_excluded = laydst_note_excluded \
	}

const struct xport_ops xport_oci_ops = LAYOUT_OPS(XPORT_OCI, oci_open);
const struct xport_ops xport_oci_archive_ops = LAYOUT_OPS(XPORT_OCI_ARCHIVE, ociarchive_open);
const struct xport_ops xport_docker_archive_ops =
    LAYOUT_OPS(XPORT_DOCKER_ARCHIVE, dockerarchive_open);
