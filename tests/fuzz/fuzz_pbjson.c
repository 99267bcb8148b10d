/*
 * fuzz_pbjson.c - bytes -> JSON -> any message of the service. The first
 * byte picks the message (every request and response of DataSync, the
 * Record, and the nrpc envelope), the second the options; the rest is the
 * JSON text. Whatever decodes must encode again, and decode from that to
 * the same protobuf bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasync/v1/datasync.pb-c.h"
#include "ds_alloc.h"
#include "nrpc/v1/rpc.pb-c.h"
#include "pbjson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const ProtobufCMessageDescriptor *const fz_types[] = {
    &datasync__v1__get_request__descriptor,
    &datasync__v1__get_response__descriptor,
    &datasync__v1__update_request__descriptor,
    &datasync__v1__update_response__descriptor,
    &datasync__v1__delete_request__descriptor,
    &datasync__v1__delete_response__descriptor,
    &datasync__v1__lock_request__descriptor,
    &datasync__v1__lock_response__descriptor,
    &datasync__v1__unlock_request__descriptor,
    &datasync__v1__unlock_response__descriptor,
    &datasync__v1__list_request__descriptor,
    &datasync__v1__list_response__descriptor,
    &datasync__v1__record__descriptor,
    &datasync__v1__precondition__descriptor,
    &datasync__v1__lock_info__descriptor,
    &nrpc__v1__request__descriptor,
    &nrpc__v1__response__descriptor,
    &nrpc__v1__status__descriptor,
};

static uint8_t *
fz_pack(const ProtobufCMessage *m, size_t *n)
{
	uint8_t *buf;

	*n = protobuf_c_message_get_packed_size(m);
	if ((buf = malloc(*n + 1)) == NULL) {
		abort();
	}
	(void) protobuf_c_message_pack(m, buf);
	return buf;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const ProtobufCMessageDescriptor *d;
	pbjson_options o;
	pbjson_error err;
	ProtobufCMessage *m = NULL;
	ProtobufCMessage *m2 = NULL;
	char *text = NULL;
	size_t text_len = 0;

	if (size < 2) {
		return 0;
	}
	d = fz_types[data[0] % (sizeof(fz_types) / sizeof(fz_types[0]))];
	memset(&o, 0, sizeof(o));
	o.original_names = data[1] & 1;
	o.emit_defaults = data[1] & 2;
	o.ignore_unknown = data[1] & 4;
	o.pretty = data[1] & 8;
	o.max_bytes = 1 << 16;
	if (pbjson_decode(d, (const char *) data + 2, size - 2, &o, &m, &err) !=
	    PBJSON_OK) {
		/* Every failure names what is wrong. */
		if (err.message[0] == '\0') {
			abort();
		}
		return 0;
	}
	if (pbjson_encode(m, &o, &text, &text_len, &err) != PBJSON_OK) {
		/* A message that decoded is always encodable, unless a size
		 * cap is hit. */
		if (strstr(err.message, "max") == NULL) {
			fprintf(stderr, "encode failed: %s\n", err.message);
			abort();
		}
	} else {
		o.max_bytes = 0;
		if (pbjson_decode(d, text, text_len, &o, &m2, &err) != PBJSON_OK) {
			fprintf(stderr, "re-decode failed: %s\n", err.message);
			abort();
		} else {
			size_t n1;
			size_t n2;
			uint8_t *b1 = fz_pack(m, &n1);
			uint8_t *b2 = fz_pack(m2, &n2);

			if (n1 != n2 || memcmp(b1, b2, n1) != 0) {
				fprintf(stderr, "round trip changed the message\n");
				abort();
			}
			free(b1);
			free(b2);
			protobuf_c_message_free_unpacked(m2, NULL);
		}
		ds_free(text);
	}
	protobuf_c_message_free_unpacked(m, NULL);
	return 0;
}
