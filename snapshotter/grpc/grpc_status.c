/* -errno to gRPC status, in one function, chosen for how containerd reacts:
 * NOT_FOUND makes it unpack, ALREADY_EXISTS and FAILED_PRECONDITION are
 * understood; anything else reaches the user as an error. */
#include "grpc_methods.h"

#include <errno.h>

grpc_status_code rpc_status_from_errno(int err)
{
	switch (err < 0 ? -err : err) {
	case 0:
		return GRPC_STATUS_OK;
	case ENOENT:
		return GRPC_STATUS_NOT_FOUND;
	case EEXIST:
		return GRPC_STATUS_ALREADY_EXISTS;
	case EINVAL:
	case EBADMSG: /* a request that does not decode */
	case ENAMETOOLONG:
	case E2BIG:
		return GRPC_STATUS_INVALID_ARGUMENT;
	case ENOTEMPTY: /* has children */
	case EBUSY:     /* wrong kind for the call, or in use */
		return GRPC_STATUS_FAILED_PRECONDITION;
	case ENOSYS:
	case ENOTSUP:
		return GRPC_STATUS_UNIMPLEMENTED;
	case ECANCELED:
		return GRPC_STATUS_CANCELLED;
	case ENOSPC:
	case ENOMEM:
	case EDQUOT:
		return GRPC_STATUS_RESOURCE_EXHAUSTED;
	case EACCES:
	case EPERM:
		return GRPC_STATUS_PERMISSION_DENIED;
	case EAGAIN:
		return GRPC_STATUS_UNAVAILABLE;
	case EOVERFLOW:
		return GRPC_STATUS_OUT_OF_RANGE;
	default:
		return GRPC_STATUS_INTERNAL;
	}
}

const char *rpc_status_name(grpc_status_code code)
{
	static const char *const names[] = {
	    "OK",
	    "CANCELLED",
	    "UNKNOWN",
	    "INVALID_ARGUMENT",
	    "DEADLINE_EXCEEDED",
	    "NOT_FOUND",
	    "ALREADY_EXISTS",
	    "PERMISSION_DENIED",
	    "RESOURCE_EXHAUSTED",
	    "FAILED_PRECONDITION",
	    "ABORTED",
	    "OUT_OF_RANGE",
	    "UNIMPLEMENTED",
	    "INTERNAL",
	    "UNAVAILABLE",
	    "DATA_LOSS",
	    "UNAUTHENTICATED",
	};
	if ((unsigned)code < sizeof(names) / sizeof(names[0]))
		return names[code];
	return "?";
}
