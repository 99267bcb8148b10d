/*
 * cli_cmds.c - get, put, delete, lock, unlock, list.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "ds_alloc.h"
#include "ds_buf.h"

/* A command validates its arguments first and connects only then (with
 * cli_connect): a usage error must not open a connection, and a client
 * that connects and leaves at once is exactly what trips nng #1518. */
typedef int (*cli_cmd_fn)(datasync_client **cp, const cli_args *a,
    const char *key, nrpc_status *st);

int
cli_connect(datasync_client **cp, const cli_args *a, nrpc_status *st)
{
	datasync_options o;

	datasync_options_default(&o);
	o.urls = a->urls;
	o.n_urls = a->n_urls;
	o.timeout_ms = a->timeout_ms;
	o.client_name = "datasync-cli";
	o.tls_ca_file = a->tls_ca;
	o.tls_cert_file = a->tls_cert;
	o.tls_key_file = a->tls_key;
	o.token = a->token;
	if (datasync_connect_opts(&o, cp, st) != NRPC_OK) {
		return cli_fail(st);
	}
	return 0;
}

static nrpc_call_opts
cli_opts(const cli_args *a)
{
	nrpc_call_opts o;

	memset(&o, 0, sizeof(o));
	o.timeout_ms = a->timeout_ms;
	o.request_id = a->request_id;
	return o;
}

/* cli_precondition fills pre from the flags; usage error when none. */
static int
cli_precondition(const cli_args *a, const char *cmd,
    Datasync__V1__Precondition *pre)
{
	datasync__v1__precondition__init(pre);
	switch (a->precond) {
	case CLI_PRE_IF_VERSION:
		pre->kind_case = DATASYNC__V1__PRECONDITION__KIND_IF_VERSION;
		pre->if_version = a->if_version;
		return 0;
	case CLI_PRE_IF_ABSENT:
		pre->kind_case = DATASYNC__V1__PRECONDITION__KIND_IF_ABSENT;
		pre->if_absent = 1;
		return 0;
	case CLI_PRE_IF_EXISTS:
		pre->kind_case = DATASYNC__V1__PRECONDITION__KIND_IF_EXISTS;
		pre->if_exists = 1;
		return 0;
	case CLI_PRE_FORCE:
		pre->kind_case = DATASYNC__V1__PRECONDITION__KIND_UNCONDITIONAL;
		pre->unconditional = 1;
		return 0;
	case CLI_PRE_NONE:
		break;
	}
	return cli_usage_error("%s needs a precondition: --if-version N, "
	                       "--if-absent, --if-exists or --force", cmd);
}

static int
cli_get(datasync_client **cp, const cli_args *a, const char *key,
    nrpc_status *st)
{
	datasync_client *c;
	Datasync__V1__GetRequest req = DATASYNC__V1__GET_REQUEST__INIT;
	Datasync__V1__GetResponse *resp = NULL;
	nrpc_call_opts o = cli_opts(a);
	int rc;

	req.key = (char *) key;
	req.version = a->version;
	if ((rc = cli_connect(cp, a, st)) != 0) {
		return rc;
	}
	c = *cp;
	if (datasync_v1_data_sync_get(datasync_rpc(c), &req, &resp, &o, st) !=
	    NRPC_OK) {
		return cli_fail(st);
	}
	if (a->json) {
		rc = cli_print_json(&resp->base);
	} else {
		const Datasync__V1__Record *r = resp->record;

		rc = CLI_EXIT_OK;
		if (r != NULL && r->value.len > 0 &&
		    fwrite(r->value.data, 1, r->value.len, stdout) !=
		        r->value.len) {
			perror("datasync: stdout");
			rc = CLI_EXIT_ERROR;
		}
	}
	datasync__v1__get_response__free_unpacked(resp, NULL);
	return rc;
}

/* cli_read_stdin reads all of stdin, up to CLI_MAX_STDIN_BYTES. */
static int
cli_read_stdin(ds_buf *b)
{
	char chunk[65536];
	ssize_t n;

	ds_buf_init(b, CLI_MAX_STDIN_BYTES);
	while ((n = read(STDIN_FILENO, chunk, sizeof(chunk))) != 0) {
		if (n < 0) {
			perror("datasync: reading the value from stdin");
			return CLI_EXIT_ERROR;
		}
		if (ds_buf_append(b, chunk, (size_t) n) != DS_OK) {
			fprintf(stderr, "datasync: TOO_LARGE: the value on stdin "
			                "exceeds %u bytes\n", CLI_MAX_STDIN_BYTES);
			return CLI_EXIT_ERROR;
		}
	}
	return CLI_EXIT_OK;
}

static int
cli_put(datasync_client **cp, const cli_args *a, const char *key,
    nrpc_status *st)
{
	datasync_client *c;
	Datasync__V1__UpdateRequest req = DATASYNC__V1__UPDATE_REQUEST__INIT;
	Datasync__V1__UpdateResponse *resp = NULL;
	Datasync__V1__Precondition pre;
	nrpc_call_opts o = cli_opts(a);
	ds_buf in;
	int rc;

	ds_buf_init(&in, 0);
	if ((rc = cli_precondition(a, "put", &pre)) != 0) {
		return rc;
	}
	req.key = (char *) key;
	if (a->value != NULL) {
		req.value.data = (uint8_t *) a->value;
		req.value.len = strlen(a->value);
	} else {
		if ((rc = cli_read_stdin(&in)) != CLI_EXIT_OK) {
			goto out;
		}
		req.value.data = in.ptr;
		req.value.len = in.len;
	}
	req.content_type = (char *) (a->content_type ? a->content_type : "");
	req.precondition = &pre;
	req.lock_token = (char *) (a->lock_token ? a->lock_token : "");
	req.author = (char *) (a->author ? a->author : "");
	if ((rc = cli_connect(cp, a, st)) != 0) {
		goto out;
	}
	c = *cp;
	if (datasync_v1_data_sync_update(datasync_rpc(c), &req, &resp, &o, st) !=
	    NRPC_OK) {
		rc = cli_fail(st);
		goto out;
	}
	if (a->json) {
		rc = cli_print_json(&resp->base);
	} else {
		printf("%s: version %" PRIu64 "%s\n", key,
		    resp->record ? resp->record->version : 0,
		    resp->replayed ? " (replayed)" : "");
		rc = CLI_EXIT_OK;
	}
	datasync__v1__update_response__free_unpacked(resp, NULL);
out:
	ds_buf_fini(&in);
	return rc;
}

static int
cli_delete(datasync_client **cp, const cli_args *a, const char *key,
    nrpc_status *st)
{
	datasync_client *c;
	Datasync__V1__DeleteRequest req = DATASYNC__V1__DELETE_REQUEST__INIT;
	Datasync__V1__DeleteResponse *resp = NULL;
	Datasync__V1__Precondition pre;
	nrpc_call_opts o = cli_opts(a);
	int rc;

	if ((rc = cli_precondition(a, "delete", &pre)) != 0) {
		return rc;
	}
	req.key = (char *) key;
	req.precondition = &pre;
	req.lock_token = (char *) (a->lock_token ? a->lock_token : "");
	req.author = (char *) (a->author ? a->author : "");
	if ((rc = cli_connect(cp, a, st)) != 0) {
		return rc;
	}
	c = *cp;
	if (datasync_v1_data_sync_delete(datasync_rpc(c), &req, &resp, &o, st) !=
	    NRPC_OK) {
		return cli_fail(st);
	}
	if (a->json) {
		rc = cli_print_json(&resp->base);
	} else {
		printf("%s: deleted (tombstone version %" PRIu64 ")\n", key,
		    resp->version);
	}
	datasync__v1__delete_response__free_unpacked(resp, NULL);
	return rc;
}

static int
cli_lock(datasync_client **cp, const cli_args *a, const char *key,
    nrpc_status *st)
{
	datasync_client *c;
	Datasync__V1__LockRequest req = DATASYNC__V1__LOCK_REQUEST__INIT;
	Datasync__V1__LockResponse *resp = NULL;
	nrpc_call_opts o = cli_opts(a);
	int rc = CLI_EXIT_OK;

	/* With a token the server names the lock after it (DESIGN §11),
	 * whatever --owner says; without one the owner is ours to give. */
	if ((a->owner == NULL || a->owner[0] == '\0') &&
	    (a->token == NULL || a->token[0] == '\0')) {
		return cli_usage_error("lock needs --owner NAME (shown to others "
		                       "while you hold the lock), or a token, "
		                       "whose name is the owner");
	}
	req.key = (char *) key;
	req.owner = (char *) (a->owner != NULL ? a->owner : "");
	req.ttl_ms = a->ttl_ms;
	req.lock_token = (char *) (a->lock_token ? a->lock_token : "");
	req.wait_ms = (uint32_t) a->wait_ms;
	/* The server may hold the call for the whole wait: the deadline
	 * covers it on top of the usual one. */
	o.timeout_ms = a->timeout_ms + a->wait_ms;
	if ((rc = cli_connect(cp, a, st)) != 0) {
		return rc;
	}
	c = *cp;
	if (datasync_v1_data_sync_lock(datasync_rpc(c), &req, &resp, &o, st) !=
	    NRPC_OK) {
		return cli_fail(st);
	}
	if (a->json) {
		rc = cli_print_json(&resp->base);
	} else {
		/* The token alone, so `T=$(datasync lock k --owner me)` works. */
		printf("%s\n", resp->lock_token);
	}
	datasync__v1__lock_response__free_unpacked(resp, NULL);
	return rc;
}

static int
cli_unlock(datasync_client **cp, const cli_args *a, const char *key,
    nrpc_status *st)
{
	datasync_client *c;
	Datasync__V1__UnlockRequest req = DATASYNC__V1__UNLOCK_REQUEST__INIT;
	Datasync__V1__UnlockResponse *resp = NULL;
	nrpc_call_opts o = cli_opts(a);
	int rc = CLI_EXIT_OK;

	if (a->lock_token == NULL) {
		return cli_usage_error("unlock needs --lock-token TOKEN");
	}
	req.key = (char *) key;
	req.lock_token = (char *) a->lock_token;
	if ((rc = cli_connect(cp, a, st)) != 0) {
		return rc;
	}
	c = *cp;
	if (datasync_v1_data_sync_unlock(datasync_rpc(c), &req, &resp, &o, st) !=
	    NRPC_OK) {
		return cli_fail(st);
	}
	if (a->json) {
		rc = cli_print_json(&resp->base);
	} else {
		printf("%s: unlocked\n", key);
	}
	datasync__v1__unlock_response__free_unpacked(resp, NULL);
	return rc;
}

static void
cli_print_entry(const Datasync__V1__Record *r)
{
	char updated[40];
	char expires[40];

	cli_format_time(r->updated_at_ms, updated, sizeof(updated));
	if (r->lock != NULL) {
		cli_format_time(r->lock->expires_at_ms, expires, sizeof(expires));
		printf("%s\t%" PRIu64 "\t%" PRIu64 "\t%s\tlocked by %s until %s\n",
		    r->key, r->version, r->revision, updated, r->lock->owner,
		    expires);
	} else {
		printf("%s\t%" PRIu64 "\t%" PRIu64 "\t%s\t-\n", r->key, r->version,
		    r->revision, updated);
	}
}

static int
cli_list(datasync_client **cp, const cli_args *a, const char *key,
    nrpc_status *st)
{
	datasync_client *c;
	Datasync__V1__ListRequest req = DATASYNC__V1__LIST_REQUEST__INIT;
	nrpc_call_opts o = cli_opts(a);
	char *token = NULL;
	int rc = CLI_EXIT_OK;

	(void) key;
	req.prefix = (char *) (a->prefix ? a->prefix : "");
	req.page_size = a->page_size;
	if ((rc = cli_connect(cp, a, st)) != 0) {
		return rc;
	}
	c = *cp;
	if (a->page_token != NULL && (token = ds_strdup(a->page_token)) == NULL) {
		fprintf(stderr, "datasync: out of memory\n");
		return CLI_EXIT_ERROR;
	}
	for (;;) {
		Datasync__V1__ListResponse *resp = NULL;

		req.page_token = token != NULL ? token : (char *) "";
		if (datasync_v1_data_sync_list(datasync_rpc(c), &req, &resp, &o,
		        st) != NRPC_OK) {
			rc = cli_fail(st);
			break;
		}
		if (a->json) {
			rc = cli_print_json(&resp->base);
		} else {
			for (size_t i = 0; i < resp->n_records; i++) {
				cli_print_entry(resp->records[i]);
			}
		}
		ds_free(token);
		token = NULL;
		if (resp->next_page_token[0] != '\0') {
			if (!a->all) {
				fprintf(stderr, "datasync: more keys: --page-token %s\n",
				    resp->next_page_token);
			} else if ((token = ds_strdup(resp->next_page_token)) == NULL) {
				rc = CLI_EXIT_ERROR;
			}
		}
		datasync__v1__list_response__free_unpacked(resp, NULL);
		if (token == NULL || rc != CLI_EXIT_OK) {
			break;
		}
	}
	ds_free(token);
	return rc;
}

int
cli_run(const char *cmd, const cli_args *a)
{
	static const struct {
		const char *name;
		cli_cmd_fn fn;
		bool needs_key;
	} cmds[] = {
	    {"get", cli_get, true},       {"put", cli_put, true},
	    {"delete", cli_delete, true}, {"lock", cli_lock, true},
	    {"unlock", cli_unlock, true}, {"list", cli_list, false},
	    {"watch", cli_watch, false},
	};
	datasync_client *c = NULL;
	nrpc_status st;
	const char *key = NULL;
	int rc;

	if (strcmp(cmd, "whoami") == 0 || strcmp(cmd, "token") == 0) {
		memset(&st, 0, sizeof(st));
		rc = cli_auth_run(&c, cmd, a, &st);
		nrpc_status_fini(&st);
		datasync_close(c);
		return rc;
	}
	if (a->n_grants > 0) {
		return cli_usage_error("--grant is for token create");
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(cmds[i].name, cmd) != 0) {
			continue;
		}
		if (cmds[i].needs_key && a->n_args != 1) {
			return cli_usage_error("%s takes exactly one KEY", cmd);
		}
		if (!cmds[i].needs_key && a->n_args != 0) {
			return cli_usage_error("%s takes no KEY (use --prefix%s)", cmd,
			    strcmp(cmd, "watch") == 0 ? " or --key" : "");
		}
		key = cmds[i].needs_key ? a->args[0] : NULL;
		memset(&st, 0, sizeof(st));
		rc = cmds[i].fn(&c, a, key, &st);
		nrpc_status_fini(&st);
		datasync_close(c);
		return rc;
	}
	return cli_usage_error("unknown command '%s'", cmd);
}
