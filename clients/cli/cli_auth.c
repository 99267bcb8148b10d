/*
 * cli_auth.c - `datasync whoami` and `datasync token create|list|revoke`
 * (DESIGN §11): the token RPCs, for a caller whose token has admin.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void
cli_print_grants(const Datasync__V1__Token *t)
{
	for (size_t i = 0; i < t->n_grants; i++) {
		printf("%s%s", i > 0 ? " " : "", t->grants[i]);
	}
}

static int
cli_whoami(datasync_client **cp, const cli_args *a, nrpc_status *st)
{
	Datasync__V1__WhoAmIRequest req = DATASYNC__V1__WHO_AM_IREQUEST__INIT;
	Datasync__V1__WhoAmIResponse *resp = NULL;
	nrpc_call_opts o;
	int rc;

	memset(&o, 0, sizeof(o));
	o.timeout_ms = a->timeout_ms;
	if ((rc = cli_connect(cp, a, st)) != 0) {
		return rc;
	}
	if (datasync_v1_data_sync_who_am_i(datasync_rpc(*cp), &req, &resp, &o,
	        st) != NRPC_OK) {
		return cli_fail(st);
	}
	if (a->json) {
		rc = cli_print_json(&resp->base);
	} else {
		rc = CLI_EXIT_OK;
		printf("auth required: %s\n", resp->auth_required ? "yes" : "no");
		if (resp->authenticated && resp->token != NULL) {
			printf("token: %s\ngrants: ", resp->token->name);
			cli_print_grants(resp->token);
			putchar('\n');
		} else {
			printf("token: none\n");
		}
	}
	datasync__v1__who_am_iresponse__free_unpacked(resp, NULL);
	return rc;
}

static void
cli_print_token(const Datasync__V1__Token *t)
{
	char made[40];
	char gone[40];

	cli_format_time(t->created_at_ms, made, sizeof(made));
	cli_format_time(t->revoked_at_ms, gone, sizeof(gone));
	printf("%-20s %-7s %s %s ", t->name, t->revoked ? "revoked" : "active",
	    made, t->revoked ? gone : "-");
	cli_print_grants(t);
	putchar('\n');
}

static int
cli_token_create(datasync_client *c, const cli_args *a, const char *name,
    const nrpc_call_opts *o, nrpc_status *st)
{
	Datasync__V1__CreateTokenRequest req =
	    DATASYNC__V1__CREATE_TOKEN_REQUEST__INIT;
	Datasync__V1__CreateTokenResponse *resp = NULL;
	int rc = CLI_EXIT_OK;

	req.name = (char *) name;
	req.grants = (char **) a->grants;
	req.n_grants = a->n_grants;
	if (datasync_v1_data_sync_create_token(datasync_rpc(c), &req, &resp, o,
	        st) != NRPC_OK) {
		return cli_fail(st);
	}
	if (a->json) {
		rc = cli_print_json(&resp->base);
	} else {
		/* stdout: the secret alone, for a pipe or a file */
		printf("%s\n", resp->secret);
		fprintf(stderr, "datasync: created token \"%s\"; the secret "
		    "above is shown this once\n",
		    resp->token != NULL ? resp->token->name : name);
	}
	memset(resp->secret, 0, strlen(resp->secret));
	datasync__v1__create_token_response__free_unpacked(resp, NULL);
	return rc;
}

static int
cli_token_list(datasync_client *c, const cli_args *a,
    const nrpc_call_opts *o, nrpc_status *st)
{
	Datasync__V1__ListTokensRequest req =
	    DATASYNC__V1__LIST_TOKENS_REQUEST__INIT;
	Datasync__V1__ListTokensResponse *resp = NULL;
	int rc = CLI_EXIT_OK;

	if (datasync_v1_data_sync_list_tokens(datasync_rpc(c), &req, &resp, o,
	        st) != NRPC_OK) {
		return cli_fail(st);
	}
	if (a->json) {
		rc = cli_print_json(&resp->base);
	} else {
		for (size_t i = 0; i < resp->n_tokens; i++) {
			cli_print_token(resp->tokens[i]);
		}
	}
	datasync__v1__list_tokens_response__free_unpacked(resp, NULL);
	return rc;
}

static int
cli_token_revoke(datasync_client *c, const cli_args *a, const char *name,
    const nrpc_call_opts *o, nrpc_status *st)
{
	Datasync__V1__RevokeTokenRequest req =
	    DATASYNC__V1__REVOKE_TOKEN_REQUEST__INIT;
	Datasync__V1__RevokeTokenResponse *resp = NULL;
	int rc = CLI_EXIT_OK;

	req.name = (char *) name;
	if (datasync_v1_data_sync_revoke_token(datasync_rpc(c), &req, &resp, o,
	        st) != NRPC_OK) {
		return cli_fail(st);
	}
	if (a->json) {
		rc = cli_print_json(&resp->base);
	} else {
		printf("revoked %s\n", name);
	}
	datasync__v1__revoke_token_response__free_unpacked(resp, NULL);
	return rc;
}

int
cli_auth_run(datasync_client **cp, const char *cmd, const cli_args *a,
    nrpc_status *st)
{
	const char *sub;
	nrpc_call_opts o;
	int rc;

	if (strcmp(cmd, "whoami") == 0) {
		if (a->n_args != 0 || a->n_grants != 0) {
			return cli_usage_error("whoami takes no arguments");
		}
		return cli_whoami(cp, a, st);
	}
	if (a->n_args == 0) {
		return cli_usage_error("token: create NAME --grant G..., list, "
		                       "or revoke NAME?");
	}
	sub = a->args[0];
	if (strcmp(sub, "list") == 0) {
		if (a->n_args != 1 || a->n_grants != 0) {
			return cli_usage_error("token list takes no arguments");
		}
	} else if (strcmp(sub, "create") == 0) {
		if (a->n_args != 2 || a->n_grants == 0) {
			return cli_usage_error("token create takes a NAME and at "
			    "least one --grant (read:PREFIX, write:PREFIX, "
			    "lock:PREFIX, admin)");
		}
	} else if (strcmp(sub, "revoke") == 0) {
		if (a->n_args != 2 || a->n_grants != 0) {
			return cli_usage_error("token revoke takes one NAME");
		}
	} else {
		return cli_usage_error("token: unknown command '%s' (create, "
		                       "list or revoke)", sub);
	}
	memset(&o, 0, sizeof(o));
	o.timeout_ms = a->timeout_ms;
	if ((rc = cli_connect(cp, a, st)) != 0) {
		return rc;
	}
	if (strcmp(sub, "create") == 0) {
		return cli_token_create(*cp, a, a->args[1], &o, st);
	}
	if (strcmp(sub, "revoke") == 0) {
		return cli_token_revoke(*cp, a, a->args[1], &o, st);
	}
	return cli_token_list(*cp, a, &o, st);
}
