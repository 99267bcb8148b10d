/*
 * ds_err.h - error codes of the util base.
 *
 * util's functions return ds_err: 0 on success, a positive code otherwise.
 * Higher modules map these to their own enums at their edge.
 */
#ifndef DS_ERR_H
#define DS_ERR_H

typedef enum ds_err {
	DS_OK = 0,
	DS_ENOMEM,    /* allocation failed */
	DS_ETOOLARGE, /* a bounded buffer would grow past its max */
	DS_EINVAL,    /* malformed argument */
	DS_EIO,       /* the OS refused (getrandom, clock) */
} ds_err;

/* ds_strerror returns a static, human-readable name for e; never NULL. */
const char *ds_strerror(ds_err e);

#endif /* DS_ERR_H */
