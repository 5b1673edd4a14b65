/* The registry options cdimg copy, push and pull share (cli.h): they set
 * the transport's options (in cdimg, and in cdimg-load for pull). */
#include <string.h>

#include "cli.h"
#include "di3fs/transport.h"

int cli_registry_option(const struct cli_args *a, struct xport_opts *o, int c, const char *arg)
{
	switch (c) {
	case CLI_OPT_CREDS:
		o->creds = arg;
		return 0;
	case CLI_OPT_AUTHFILE:
		o->authfile = arg;
		return 0;
	case CLI_OPT_TLS_VERIFY:
		if (strcmp(arg, "true") && strcmp(arg, "false"))
			return cli_bad_value(a, "--tls-verify", arg, "is not true or false");
		o->tls_verify = strcmp(arg, "true") == 0 ? 0 : -1;
		return 0;
	case CLI_OPT_CERT_DIR:
		o->certs_dir = arg;
		return 0;
	}
	return -2;
}
