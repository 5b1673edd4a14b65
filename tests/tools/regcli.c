/* regcli: drives the registry client (registry/) and the docker://
 * transport for the tests — push and pull whole images, and the single
 * calls (manifests, blobs, mounts, tags, referrers) — and says how many
 * requests it took (--stats). Exit codes as cdimg's: 0 ok, 1 failed,
 * 2 usage, 3 corrupt or unusable input. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "dimg/hash.h"
#include "regcli.h"

static int usage(void)
{
	fprintf(stderr,
	        "usage: regcli [OPTIONS] COMMAND ARGS\n"
	        "  push LAYOUT HOST/REPO[:TAG]      an OCI layout's image, only missing blobs\n"
	        "  pull HOST/REPO[:TAG|@D] LAYOUT   into an OCI layout (resumes .partial blobs)\n"
	        "  manifest [--head] HOST/REPO[:TAG|@D]\n"
	        "  blob HOST/REPO@D SIZE [OFFSET]   the blob's bytes to stdout\n"
	        "  has HOST/REPO@D                  yes or no\n"
	        "  put-blob FILE HOST/REPO          prints its digest\n"
	        "  mount HOST/REPO@D FROM-REPO      mounted or not mounted\n"
	        "  tags HOST/REPO\n"
	        "  referrers HOST/REPO@D [ARTIFACT-TYPE]\n"
	        "options: --creds U:P --authfile F --tls-verify=false --plain-http\n"
	        "  --http-fallback --cert-dir D --certs-d D --hosts-dir D --chunk-size N\n"
	        "  --retries N --timeout S --platform P --all --transport --stats\n");
	return 2;
}

static int fail(int rc, const struct dimg_err *err)
{
	fprintf(stderr, "regcli: %s%s%s%s%s\n", err->what, err->what[0] ? ": " : "", err->why,
	        err->why[0] ? ": " : "", strerror(-rc));
	return rc == -EBADMSG || rc == -ENOTSUP || rc == -EFBIG || rc == -ELOOP ? 3 : 1;
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 10);
	return errno || end == s || *end || s[0] == '-' ? -EINVAL : 0;
}

enum {
	O_CREDS = 256,
	O_AUTHFILE,
	O_TLS,
	O_PLAIN,
	O_FALLBACK,
	O_CERTDIR,
	O_CERTSD,
	O_HOSTSD,
	O_CHUNK,
	O_RETRIES,
	O_TIMEOUT,
	O_PLATFORM,
	O_ALL,
	O_TRANSPORT,
	O_STATS,
	O_HEAD
};

static const struct option long_opts[] = {{"creds", 1, 0, O_CREDS},
                                          {"authfile", 1, 0, O_AUTHFILE},
                                          {"tls-verify", 1, 0, O_TLS},
                                          {"plain-http", 0, 0, O_PLAIN},
                                          {"http-fallback", 0, 0, O_FALLBACK},
                                          {"cert-dir", 1, 0, O_CERTDIR},
                                          {"certs-d", 1, 0, O_CERTSD},
                                          {"hosts-dir", 1, 0, O_HOSTSD},
                                          {"chunk-size", 1, 0, O_CHUNK},
                                          {"retries", 1, 0, O_RETRIES},
                                          {"timeout", 1, 0, O_TIMEOUT},
                                          {"platform", 1, 0, O_PLATFORM},
                                          {"all", 0, 0, O_ALL},
                                          {"transport", 0, 0, O_TRANSPORT},
                                          {"stats", 0, 0, O_STATS},
                                          {"head", 0, 0, O_HEAD},
                                          {0, 0, 0, 0}};

static int parse_opt(struct cli_opts *o, int c, const char *arg, int *head)
{
	uint64_t v = 0;

	switch (c) {
	case O_CREDS:
		o->reg.creds = arg;
		break;
	case O_AUTHFILE:
		o->reg.authfile = arg;
		break;
	case O_TLS:
		o->reg.tls_insecure = strcmp(arg, "false") == 0;
		break;
	case O_PLAIN:
		o->reg.http = REG_HTTP_ONLY;
		break;
	case O_FALLBACK:
		o->reg.http = REG_HTTP_FALLBACK;
		break;
	case O_CERTDIR:
		o->reg.cert_dir = arg;
		break;
	case O_CERTSD:
		o->reg.certs_d = arg;
		break;
	case O_HOSTSD:
		o->reg.hosts_dir = arg;
		break;
	case O_PLATFORM:
		o->platform = arg;
		break;
	case O_ALL:
		o->all = 1;
		break;
	case O_TRANSPORT:
		o->transport = 1;
		break;
	case O_STATS:
		o->stats = 1;
		break;
	case O_HEAD:
		*head = 1;
		break;
	case O_CHUNK:
	case O_RETRIES:
	case O_TIMEOUT:
		if (parse_u64(arg, &v) < 0 || v == 0 || v > (1u << 30))
			return -EINVAL;
		if (c == O_CHUNK)
			o->reg.chunk_size = (size_t)v;
		else if (c == O_RETRIES)
			o->reg.retries = (unsigned)v;
		else
			o->reg.timeout_s = (unsigned)v;
		break;
	default:
		return -EINVAL;
	}
	return 0;
}

static int print_tag(void *ctx, const char *tag)
{
	printf("%s\n", tag);
	return 0;
}

static int print_desc(void *ctx, struct json_object *d)
{
	printf("%s\n", json_object_to_json_string_ext(d, JSON_C_TO_STRING_PLAIN));
	return 0;
}

static int cmd_manifest(struct img_io *io, const struct img_name *n, int head, struct dimg_err *err)
{
	struct reg *r = io_direct_reg(io);
	const char *ref = n->digest[0] ? n->digest : n->tag[0] ? n->tag : "latest";
	struct reg_manifest m = {0};
	char ds[OCI_DIGEST_LEN];
	int rc = head ? reg_manifest_head(r, n->repo, ref, &m, err)
	              : io->get_manifest(io->ctx, ref, &m, err);

	if (rc == 0 && !head)
		rc = dimg_write_fd(&(int){1}, m.raw, m.len);
	oci_digest_str(ds, m.digest);
	if (head && rc >= 0)
		printf(rc ? "%s %s %zu\n" : "absent\n", ds, m.media_type, m.len);
	reg_manifest_clear(&m);
	return rc < 0 ? rc : 0;
}

static int cmd_blob(struct img_io *io, const struct img_name *n, int argc, char **argv,
                    struct dimg_err *err)
{
	struct oci_desc d = {0};
	uint64_t off = 0;

	if (argc < 1 || parse_u64(argv[0], &d.size) < 0 || (argc > 1 && parse_u64(argv[1], &off)))
		return -EINVAL;
	oci_digest_parse(d.digest, n->digest);
	return io->get_blob(io->ctx, &d, off, dimg_write_fd, &(int){1}, err);
}

static ssize_t fd_src(void *ctx, void *p, size_t n)
{
	ssize_t k = read(*(int *)ctx, p, n);
	return k < 0 ? -errno : k;
}

static int cmd_put_blob(struct img_io *io, const char *file, struct dimg_err *err)
{
	struct oci_desc d = {0};
	char ds[OCI_DIGEST_LEN];
	int fd = open(file, O_RDONLY), rc;

	if (fd < 0)
		return dimg_err_set(err, -errno, file, NULL);
	rc = dimg_sha256_fd(fd, d.digest, &d.size);
	if (rc == 0 && lseek(fd, 0, SEEK_SET) != 0)
		rc = -errno;
	if (rc == 0)
		rc = io->put_blob(io->ctx, &d, fd_src, &fd, err);
	close(fd);
	oci_digest_str(ds, d.digest);
	if (rc == 0)
		printf("%s %" PRIu64 "\n", ds, d.size);
	return rc;
}

static int run(struct img_io *io, const struct img_name *n, const char *cmd, int argc, char **argv,
               int head, struct dimg_err *err)
{
	struct reg *r = io_direct_reg(io);
	struct oci_desc d = {0};
	int rc = -EINVAL;

	oci_digest_parse(d.digest, n->digest);
	if (!strcmp(cmd, "push") && argc == 2)
		return img_push(io, argv[0], err);
	if (!strcmp(cmd, "pull") && argc == 2)
		return img_pull(io, argv[1], n->tag[0] ? n->tag : NULL, err);
	if (!strcmp(cmd, "manifest") && argc == 1 && (r || !head))
		return cmd_manifest(io, n, head, err);
	if (!strcmp(cmd, "blob") && n->digest[0])
		return cmd_blob(io, n, argc - 1, argv + 1, err);
	if (!strcmp(cmd, "put-blob") && argc == 2)
		return cmd_put_blob(io, argv[0], err);
	if (!strcmp(cmd, "has") && n->digest[0] && (rc = io->has_blob(io->ctx, &d, err)) >= 0)
		return printf("%s\n", rc ? "yes" : "no") < 0;
	if (!strcmp(cmd, "mount") && argc == 2 && n->digest[0] &&
	    (rc = io->mount(io->ctx, &d, argv[1], err)) >= 0)
		return printf("%s\n", rc ? "mounted" : "not mounted") < 0;
	if (!strcmp(cmd, "tags") && r)
		return reg_tags_list(r, n->repo, print_tag, NULL, err);
	if (!strcmp(cmd, "referrers") && r && n->digest[0])
		return reg_referrers(r, n->repo, d.digest, argc > 1 ? argv[1] : NULL, print_desc,
		                     NULL, err);
	if (!strcmp(cmd, "has") || !strcmp(cmd, "mount"))
		return rc;
	return -EINVAL;
}

int main(int argc, char **argv)
{
	struct cli_opts o = {0};
	struct dimg_err err = {0};
	struct img_name n;
	struct img_io io;
	int c, head = 0, rc;

	while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1)
		if (parse_opt(&o, c, optarg, &head) < 0)
			return usage();
	if (argc - optind < 2)
		return usage();
	const char *cmd = argv[optind];
	char **args = argv + optind + 1;
	int nargs = argc - optind - 1;
	/* the image name: push's second argument, everyone else's first */
	if (img_name_parse(&n, args[!strcmp(cmd, "push") || !strcmp(cmd, "put-blob")]) < 0) {
		fprintf(stderr, "regcli: not HOST/REPO[:TAG][@DIGEST]\n");
		return 2;
	}
	rc = o.transport ? io_open_transport(&io, &n, &o, strcmp(cmd, "pull") != 0, &err)
	                 : io_open_direct(&io, &n, &o, &err);
	if (rc < 0)
		return fail(rc, &err);
	rc = run(&io, &n, cmd, nargs, args, head, &err);
	if (o.stats && io_direct_reg(&io)) {
		struct reg_stats s;
		reg_get_stats(io_direct_reg(&io), &s);
		fprintf(stderr,
		        "stats: requests=%" PRIu64 " retries=%" PRIu64 " in=%" PRIu64
		        " out=%" PRIu64 "\n",
		        s.requests, s.retries, s.bytes_in, s.bytes_out);
	}
	io.close(io.ctx);
	if (rc == -EINVAL && !err.what[0])
		return usage();
	return rc < 0 ? fail(rc, &err) : 0;
}
