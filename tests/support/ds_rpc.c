/*
 * ds_rpc.c - see ds_rpc.h.
 */
#include "ds_rpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

int
ds_rpc_raw(const char *url, const void *buf, size_t len, int timeout_ms,
    Nrpc__V1__Response **out)
{
	nng_socket s;
	void *reply = NULL;
	size_t rlen = 0;
	int rv = DS_RPC_RAW_BAD;

	*out = NULL;
	if (nng_req0_open(&s) != 0) {
		return DS_RPC_RAW_BAD;
	}
	/* REQ resends after RESENDTIME; one try is what a test of one
	 * message means, and resending into a closed pipe churns nng. */
	if (nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, timeout_ms) != 0 ||
	    nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, timeout_ms) != 0 ||
	    nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, 600000) != 0 ||
	    nng_dial(s, url, NULL, 0) != 0) {
		goto done;
	}
	rv = DS_RPC_RAW_NOREPLY;
	if (nng_send(s, (void *) buf, len, 0) == 0 &&
	    nng_recv(s, &reply, &rlen, NNG_FLAG_ALLOC) == 0) {
		*out = nrpc__v1__response__unpack(NULL, rlen, reply);
		rv = *out != NULL ? DS_RPC_RAW_REPLY : DS_RPC_RAW_BAD;
		nng_free(reply, rlen);
	}
done:
	(void) nng_close(s);
	return rv;
}

int
ds_rpc_increment(
    void *ctx, const Datasync__V1__Record *cur, uint8_t **v, size_t *len)
{
	char t[32];
	long long n = 0;

	(void) ctx;
	if (cur != NULL && cur->value.len < sizeof(t)) {
		memcpy(t, cur->value.data, cur->value.len);
		t[cur->value.len] = '\0';
		n = atoll(t);
	}
	*len = (size_t) snprintf(t, sizeof(t), "%lld", n + 1);
	if ((*v = malloc(*len)) == NULL) {
		return -1;
	}
	memcpy(*v, t, *len);
	return 0;
}
