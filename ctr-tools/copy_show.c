/* cdimg copy's progress: one line per blob, redrawn in place on a
 * terminal (`3/12 sha256:ab12… 137.7 MB / 240.1 MB`, "Already exists",
 * "Mounted", ...), or JSON events, and the totals. */
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "copy_show.h"

#define SHOW_EVERY_MS 100

static int64_t show_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void copy_show_init(struct copy_show *s, enum copy_show_mode mode)
{
	memset(s, 0, sizeof(*s));
	s->mode = mode;
}

void copy_show_free(struct copy_show *s)
{
	free(s->last);
	s->last = NULL;
}

static const char *show_size(uint64_t n, char *buf, size_t len)
{
	return cli_human_units(n, 1000, buf, len);
}

static const char *show_status_word(enum xcopy_status st)
{
	static const char *const w[] = {"waiting", "copying", "copied",
	                                "exists",  "mounted", "excluded"};
	return (unsigned)st < sizeof(w) / sizeof(w[0]) ? w[st] : "?";
}

static void show_line(const struct xcopy_event *ev)
{
	char ds[OCI_DIGEST_LEN], a[32], b[32];
	oci_digest_str(ds, ev->desc->digest);
	fprintf(stderr, "\r\033[K%zu/%zu %.19s… ", ev->index, ev->count, ds);
	switch (ev->status) {
	case XCOPY_WAITING:
		fprintf(stderr, "Waiting (%s)", show_size(ev->desc->size, a, sizeof(a)));
		break;
	case XCOPY_COPYING:
		fprintf(stderr, "%s / %s", show_size(ev->done, a, sizeof(a)),
		        show_size(ev->desc->size, b, sizeof(b)));
		if (ev->resumed)
			fprintf(stderr, " (resumed at %s)", show_size(ev->resumed, a, sizeof(a)));
		break;
	case XCOPY_COPIED:
		fprintf(stderr, "Copied %s", show_size(ev->desc->size, a, sizeof(a)));
		break;
	case XCOPY_EXISTS:
		fprintf(stderr, "Already exists");
		break;
	case XCOPY_MOUNTED:
		fprintf(stderr, "Mounted from the source repository");
		break;
	case XCOPY_EXCLUDED:
		fprintf(stderr, "Excluded (the base image has it)");
		break;
	}
}

/* Blob lines are printed once each in order, then redrawn where they are. */
static void show_term(struct copy_show *s, const struct xcopy_event *ev)
{
	if (ev->kind != XCOPY_EV_BLOB)
		return;
	if (!s->last && !(s->last = calloc(ev->count ? ev->count : 1, sizeof(*s->last))))
		return;
	size_t i = ev->index - 1;
	if (ev->index > s->count) { /* a new line, below the others */
		show_line(ev);
		fputc('\n', stderr);
		s->count = ev->index;
		s->last[i] = show_now_ms();
		fflush(stderr);
		return;
	}
	int64_t t = show_now_ms();
	if (ev->status == XCOPY_COPYING && ev->done != ev->desc->size && ev->done &&
	    t - s->last[i] < SHOW_EVERY_MS)
		return;
	s->last[i] = t;
	size_t up = s->count - i;
	fprintf(stderr, "\033[%zuA", up);
	show_line(ev);
	fprintf(stderr, "\033[%zuB\r", up);
	fflush(stderr);
}

static void show_json_desc(struct json_object *o, const struct oci_desc *d)
{
	char ds[OCI_DIGEST_LEN];
	oci_digest_str(ds, d->digest);
	json_object_object_add(o, "digest", json_object_new_string(ds));
	json_object_object_add(o, "size", json_object_new_int64((int64_t)d->size));
	if (d->media_type)
		json_object_object_add(o, "mediaType", json_object_new_string(d->media_type));
}

static void show_json_put(struct json_object *o)
{
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	                                           JSON_C_TO_STRING_NOSLASHESCAPE));
	fflush(stdout);
	json_object_put(o);
}

static void show_json(const struct xcopy_event *ev)
{
	struct json_object *o = json_object_new_object();
	if (!o || (ev->kind == XCOPY_EV_BLOB && ev->status == XCOPY_COPYING && ev->done)) {
		json_object_put(o); /* progress within a blob: the terminal's business */
		return;
	}
	static const char *const kind[] = {"plan", "blob", "manifest"};
	json_object_object_add(o, "event", json_object_new_string(kind[ev->kind]));
	if (ev->kind == XCOPY_EV_PLAN) {
		json_object_object_add(o, "blobs", json_object_new_int64((int64_t)ev->count));
		json_object_object_add(o, "bytes_to_copy",
		                       json_object_new_int64((int64_t)ev->done));
	}
	if (ev->kind == XCOPY_EV_BLOB) {
		json_object_object_add(o, "index", json_object_new_int64((int64_t)ev->index));
		json_object_object_add(o, "count", json_object_new_int64((int64_t)ev->count));
		json_object_object_add(o, "status",
		                       json_object_new_string(show_status_word(ev->status)));
		if (ev->resumed)
			json_object_object_add(o, "resumed",
			                       json_object_new_int64((int64_t)ev->resumed));
	}
	if (ev->desc)
		show_json_desc(o, ev->desc);
	if (ev->kind == XCOPY_EV_MANIFEST && ev->ref)
		json_object_object_add(o, "ref", json_object_new_string(ev->ref));
	show_json_put(o);
}

void copy_show_event(void *ctx, const struct xcopy_event *ev)
{
	struct copy_show *s = ctx;
	if (s->mode == COPY_SHOW_TERM)
		show_term(s, ev);
	else if (s->mode == COPY_SHOW_JSON)
		show_json(ev);
}

void copy_show_summary(const struct copy_show *s, const struct xcopy_result *res, const char *dst,
                       double secs)
{
	char a[32];
	if (s->mode == COPY_SHOW_TERM) {
		fprintf(stderr, "%zu blobs: %zu copied (%s), %zu already existed", res->blobs,
		        res->copied, show_size(res->copied_bytes, a, sizeof(a)), res->existing);
		if (res->mounted)
			fprintf(stderr, ", %zu mounted", res->mounted);
		if (res->excluded)
			fprintf(stderr, ", %zu excluded (listed in the archive)", res->excluded);
		fprintf(stderr, "; %.1f s\nmanifest %s -> %s\n", secs, res->manifest_digest, dst);
		return;
	}
	if (s->mode != COPY_SHOW_JSON)
		return;
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "event", json_object_new_string("summary"));
	json_object_object_add(o, "destination", json_object_new_string(dst));
	json_object_object_add(o, "manifest_digest", json_object_new_string(res->manifest_digest));
	json_object_object_add(o, "images", json_object_new_int64((int64_t)res->images));
	json_object_object_add(o, "blobs", json_object_new_int64((int64_t)res->blobs));
	json_object_object_add(o, "copied", json_object_new_int64((int64_t)res->copied));
	json_object_object_add(o, "existing", json_object_new_int64((int64_t)res->existing));
	json_object_object_add(o, "mounted", json_object_new_int64((int64_t)res->mounted));
	json_object_object_add(o, "excluded", json_object_new_int64((int64_t)res->excluded));
	json_object_object_add(o, "bytes", json_object_new_int64((int64_t)res->bytes));
	json_object_object_add(o, "copied_bytes",
	                       json_object_new_int64((int64_t)res->copied_bytes));
	json_object_object_add(o, "resumed_bytes",
	                       json_object_new_int64((int64_t)res->resumed_bytes));
	json_object_object_add(o, "seconds", json_object_new_double(secs));
	show_json_put(o);
}

void copy_show_error(const struct copy_show *s, const struct xcopy_result *res, int rc,
                     const struct dimg_err *err)
{
	if (s->mode != COPY_SHOW_JSON)
		return;
	struct json_object *o = json_object_new_object(), *m = json_object_new_array();
	json_object_object_add(o, "event", json_object_new_string("error"));
	json_object_object_add(o, "errno", json_object_new_int(-rc));
	json_object_object_add(o, "what", json_object_new_string(err->what));
	json_object_object_add(o, "why", json_object_new_string(err->why));
	for (size_t i = 0; i < res->nmissing; i++)
		json_object_array_add(m, json_object_new_string(res->missing[i]));
	json_object_object_add(o, "missing", m);
	show_json_put(o);
}
