/* ctrd: containerd's image records (List, Get, Create/Update). */
#include "ctrd-internal.h"
#include "images.pb-c.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IMAGES_SVC "/containerd.services.images.v1.Images/"

typedef Containerd__Services__Images__V1__Image PbImage;

void ctrd_image_clear(struct ctrd_image *img)
{
	if (!img)
		return;
	free(img->name);
	free(img->media_type);
	free(img->digest);
	memset(img, 0, sizeof(*img));
}

void ctrd_images_free(struct ctrd_image *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		ctrd_image_clear(&v[i]);
	free(v);
}

static int image_from_pb(struct ctrd_image *out, const PbImage *pb)
{
	const Containerd__Types__Descriptor *t = pb->target;
	memset(out, 0, sizeof(*out));
	out->name = strdup(pb->name);
	out->media_type = strdup(t ? t->media_type : "");
	out->digest = strdup(t ? t->digest : "");
	out->size = t ? t->size : 0;
	if (out->name && out->media_type && out->digest)
		return 0;
	ctrd_image_clear(out);
	return -ENOMEM;
}

int ctrd_images_list(struct ctrd *c, struct ctrd_image **out, size_t *n, struct dimg_err *err)
{
	Containerd__Services__Images__V1__ListImagesRequest req =
	    CONTAINERD__SERVICES__IMAGES__V1__LIST_IMAGES_REQUEST__INIT;
	ProtobufCMessage *m;
	*out = NULL;
	*n = 0;
	int r = ctrd_unary(c, IMAGES_SVC "List", "images list", &req.base,
	                   &containerd__services__images__v1__list_images_response__descriptor, &m,
	                   err);
	if (r < 0)
		return r;
	const Containerd__Services__Images__V1__ListImagesResponse *resp = (void *)m;
	struct ctrd_image *v = calloc(resp->n_images ? resp->n_images : 1, sizeof(*v));
	size_t i;
	for (i = 0; v && i < resp->n_images; i++)
		if (image_from_pb(&v[i], resp->images[i]) < 0)
			break;
	if (!v || i < resp->n_images) {
		ctrd_images_free(v, i);
		protobuf_c_message_free_unpacked(m, NULL);
		return ctrd_fail(err, -ENOMEM, "images list: out of memory");
	}
	*out = v;
	*n = resp->n_images;
	protobuf_c_message_free_unpacked(m, NULL);
	return 0;
}

int ctrd_image_get(struct ctrd *c, const char *name, struct ctrd_image *out, struct dimg_err *err)
{
	Containerd__Services__Images__V1__GetImageRequest req =
	    CONTAINERD__SERVICES__IMAGES__V1__GET_IMAGE_REQUEST__INIT;
	ProtobufCMessage *m;
	char what[300];
	snprintf(what, sizeof(what), "image get %s", name);
	memset(out, 0, sizeof(*out));
	req.name = (char *)name;
	int r =
	    ctrd_unary(c, IMAGES_SVC "Get", what, &req.base,
	               &containerd__services__images__v1__get_image_response__descriptor, &m, err);
	if (r < 0)
		return r;
	const Containerd__Services__Images__V1__GetImageResponse *resp = (void *)m;
	r = resp->image ? image_from_pb(out, resp->image) : -ENOENT;
	protobuf_c_message_free_unpacked(m, NULL);
	if (r < 0)
		return ctrd_fail(err, r, "%s: %s", what,
		                 r == -ENOENT ? "not found" : "out of memory");
	return 0;
}

/* Create, or Update (every mutable field: target and labels) if it exists. */
static int image_create_or_update(struct ctrd *c, PbImage *img, struct dimg_err *err)
{
	Containerd__Services__Images__V1__CreateImageRequest creq =
	    CONTAINERD__SERVICES__IMAGES__V1__CREATE_IMAGE_REQUEST__INIT;
	Containerd__Services__Images__V1__UpdateImageRequest ureq =
	    CONTAINERD__SERVICES__IMAGES__V1__UPDATE_IMAGE_REQUEST__INIT;
	char what[300];
	snprintf(what, sizeof(what), "image create %s", img->name);
	creq.image = img;
	int r = ctrd_unary(c, IMAGES_SVC "Create", what, &creq.base,
	                   &containerd__services__images__v1__create_image_response__descriptor,
	                   NULL, err);
	if (r != -EEXIST)
		return r;
	dimg_err_clear(err);
	snprintf(what, sizeof(what), "image update %s", img->name);
	ureq.image = img;
	return ctrd_unary(c, IMAGES_SVC "Update", what, &ureq.base,
	                  &containerd__services__images__v1__update_image_response__descriptor,
	                  NULL, err);
}

int ctrd_image_put(struct ctrd *c, const struct ctrd_image *img, const struct ctrd_label *labels,
                   size_t n_labels, struct dimg_err *err)
{
	PbImage pb = CONTAINERD__SERVICES__IMAGES__V1__IMAGE__INIT;
	Containerd__Types__Descriptor target = CONTAINERD__TYPES__DESCRIPTOR__INIT;
	void **entries = NULL;
	int r = ctrd_pb_labels(&containerd__services__images__v1__image__labels_entry__descriptor,
	                       labels, n_labels, &entries);
	if (r < 0)
		return ctrd_fail(err, r, "image put %s: out of memory", img->name);
	target.media_type = img->media_type;
	target.digest = img->digest;
	target.size = img->size;
	pb.name = img->name;
	pb.target = &target;
	pb.labels = (void *)entries;
	pb.n_labels = n_labels;
	r = image_create_or_update(c, &pb, err);
	free(entries);
	return r;
}
