/*
 * store_limits.h - every limit the store enforces, with its default, its
 * hard maximum and the reason for both (STYLE rule 16).
 *
 * A configured value above the hard maximum is rejected by store_open
 * (not clamped). Every limit is checked before any SQL runs, and a
 * violation names the limit by the name in the comment ("max_key_bytes").
 */
#ifndef STORE_LIMITS_H
#define STORE_LIMITS_H

#include <stdint.h>

/* Keys are UTF-8 without control characters, 1..max_key_bytes. 512 fits
 * URL paths and file-like names; 4096 is PATH_MAX and the most any index
 * page should carry. */
#define STORE_MAX_KEY_BYTES_DEFAULT 512
#define STORE_MAX_KEY_BYTES_HARD 4096

/* Values are opaque bytes. 1 MiB keeps a record a "record", not a blob
 * store; 64 MiB bounds a single SQLite row and an nng message. */
#define STORE_MAX_VALUE_BYTES_DEFAULT (1024 * 1024)
#define STORE_MAX_VALUE_BYTES_HARD (64 * 1024 * 1024)

/* content_type is a MIME type: 128 is more than any registered one. */
#define STORE_MAX_CONTENT_TYPE_BYTES_DEFAULT 128
#define STORE_MAX_CONTENT_TYPE_BYTES_HARD 1024

/* owner (lock holder) and author (updated_by) are names shown to users. */
#define STORE_MAX_OWNER_BYTES_DEFAULT 128
#define STORE_MAX_OWNER_BYTES_HARD 1024

/* request_id: a UUID is 36 bytes; 128 leaves room for prefixes. */
#define STORE_MAX_REQUEST_ID_BYTES_DEFAULT 128
#define STORE_MAX_REQUEST_ID_BYTES_HARD 1024

/* caller: the scope of a request_id (an RPC client name, at most 128
 * bytes, or "http:" and a peer address). 256 fits both with room; 1024
 * bounds the key of the request-id tables. */
#define STORE_MAX_CALLER_BYTES_DEFAULT 256
#define STORE_MAX_CALLER_BYTES_HARD 1024

/* Precondition if_version_in: the versions a writer accepts (an HTTP
 * If-Match list). 32 matches the gateway's GW_MAX_ETAGS; 1024 bounds the
 * linear scan done inside the write transaction. */
#define STORE_MAX_IF_VERSION_IN_DEFAULT 32
#define STORE_MAX_IF_VERSION_IN_HARD 1024

/* List pages: 1000 records of metadata is a few hundred KiB. */
#define STORE_MAX_PAGE_SIZE_DEFAULT 1000
#define STORE_MAX_PAGE_SIZE_HARD 100000
#define STORE_DEFAULT_PAGE_SIZE 100

/* History: versions of each record kept readable, the current included;
 * 0 keeps only the current one. */
#define STORE_HISTORY_DEFAULT 16
#define STORE_HISTORY_HARD 1024

/* Lease bounds (DESIGN §4 rule 3): default 30 s, 1 s .. 1 h. */
#define STORE_LOCK_TTL_DEFAULT_MS (30 * 1000)
#define STORE_LOCK_TTL_MIN_MS 1000
#define STORE_LOCK_TTL_MAX_MS (60 * 60 * 1000)
#define STORE_LOCK_TTL_HARD_MAX_MS (24 * 60 * 60 * 1000)

/* How long a request_id's result is remembered for replay. A client's
 * retries (and nng's REQ resends) happen within seconds; a day covers a
 * client that was down and retries from a journal. */
#define STORE_REQUEST_ID_TTL_DEFAULT_MS (24 * 60 * 60 * 1000)

/* How long one store call waits for SQLite's lock held by another
 * connection (another process: a sqlite3 shell left in BEGIN, a backup,
 * a VACUUM) before it gives up with STORE_EBUSY ("DB_BUSY"). In-process
 * writers queue on a mutex and never poll, so only a foreign holder or
 * WAL recovery makes anyone wait. 5 s rides out any commit or checkpoint
 * and stays under a client's default 10 s deadline; 60 s is more than any
 * client waits. 0 gives up at the first refusal. */
#define STORE_BUSY_TIMEOUT_DEFAULT_MS 5000
#define STORE_BUSY_TIMEOUT_HARD_MS (60 * 1000)

/* store_limits: the values in force. Copy store_limits_default() and
 * change what you need. */
typedef struct store_limits {
	uint32_t max_key_bytes;
	uint32_t max_value_bytes;
	uint32_t max_content_type_bytes;
	uint32_t max_owner_bytes;
	uint32_t max_request_id_bytes;
	uint32_t max_caller_bytes;  /* request_id scope (store_write.caller) */
	uint32_t max_if_version_in; /* entries of an if_version_in list */
	uint32_t max_page_size;
	uint32_t default_page_size;
	uint32_t history;           /* versions kept per key, current included */
	int64_t lock_ttl_default_ms;
	int64_t lock_ttl_min_ms;
	int64_t lock_ttl_max_ms;
	int64_t request_id_ttl_ms;
	int64_t busy_timeout_ms;    /* lock wait per store call, 0..HARD */
} store_limits;

/* store_limits_default returns the defaults above. */
store_limits store_limits_default(void);

#endif /* STORE_LIMITS_H */
