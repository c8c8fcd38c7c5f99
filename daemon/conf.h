/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The configuration file: one directive per line, "key value...", '#'
 * comments.  A file is parsed into a fresh struct conf that is returned only
 * when the whole file is valid, so a bad file never half-applies.
 */
#ifndef HAKD_CONF_H
#define HAKD_CONF_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "hak_geom.h"
#include "hak_layout.h"
#include "zero.h"

#define CONF_DEFAULT_PATH SYSCONFDIR "/hakzerod/hakzerod.conf"

/* Bounds the parser enforces. */
#define CONF_MAX_POOL (1ull << 40)	 /* 1T: pool sizes times 100 fit in 64 bits */
#define CONF_MAX_CLASS_SIZE (1ull << 30) /* 1G slots */
#define CONF_MAX_SLOTS HAK_MAX_SLOTS	 /* per class, as hak_layout_compute accepts */
#define CONF_MAX_CLIENTS 65536u
#define CONF_MAX_RETURN_BATCH 4096u

struct conf {
	char *path; /* the file it came from, or "(defaults)" */
	char *socket;
	unsigned socket_mode;
	char *socket_group; /* NULL: unset */
	gid_t socket_gid;
	char *admin_group; /* NULL: root only */
	gid_t admin_gid;
	uint64_t pool_size;
	uint64_t pool_size_max;
	unsigned nclasses;
	struct hak_class_spec cls[HAK_MAX_CLASSES];
	unsigned ready_low;  /* percent of a class's slots */
	unsigned ready_high; /* percent of a class's slots */
	unsigned return_batch;
	unsigned zero_threads;
	enum zero_method zero_method;
	int zero_nice;
	uint64_t trim_idle_ms;	   /* 0: never trim idle slots */
	uint64_t psi_threshold_us; /* 0: no memory-pressure trigger */
	uint64_t psi_window_us;
	unsigned global_budget_pct;   /* of MemTotal; 0 when given as a size */
	uint64_t global_budget_bytes; /* when given as a size; 0 and pct 0: none */
	uint64_t uid_limit;	      /* 0: none */
	unsigned max_clients;
	bool huge_pages;
	int log_level;
};

/* Receives each error, formatted "FILE:LINE: message" (or "FILE: message"). */
typedef void (*conf_report_fn)(void *data, const char *msg);

/* Returns a config with the embedded defaults, or NULL (out of memory). */
struct conf *conf_new_defaults(void);
void conf_free(struct conf *c);

/*
 * Parses the file at path.  On success stores a new config in *out and
 * returns 0; otherwise reports every error through report (may be NULL) and
 * returns -EINVAL, or -errno when the file cannot be read (also reported).
 */
int conf_load(const char *path, conf_report_fn report, void *data, struct conf **out);
/* The configuration the daemon runs on: the file at path (--config), else
 * CONF_DEFAULT_PATH when it exists, else the embedded defaults (-ENOMEM
 * when out of memory).  Otherwise as conf_load. */
int conf_load_default(const char *path, conf_report_fn report, void *data, struct conf **out);
/* The same from an open stream; name is used in messages. */
int conf_parse(FILE *f, const char *name, conf_report_fn report, void *data, struct conf **out);

/* Replaces c->socket.  Returns 0 or -ENOMEM. */
int conf_set_socket(struct conf *c, const char *path);

/* For a reload: copies into c, from the running config old, the settings a
 * running daemon cannot change (socket, classes, zeroing threads and method,
 * huge pages).  Returns 0 or -ENOMEM. */
int conf_keep_restart_settings(struct conf *c, const struct conf *old);

/* "64M", "4K", "1G", "4096" -> bytes.  Returns 0 or -EINVAL/-ERANGE. */
int conf_parse_size(const char *s, uint64_t *out);
/* "30s", "100ms", "0" -> milliseconds or microseconds. */
int conf_parse_duration_us(const char *s, uint64_t *out_us);
/* Bytes as the largest exact unit: "64M", "1G", "4096". */
const char *conf_format_size(char *buf, size_t len, uint64_t bytes);

/*
 * Class geometry of a pool of about pool_bytes: each class gets
 * pool_bytes * share / 100 rounded down to whole slots, at least one.  Fills
 * g (HAK_MAX_CLASSES entries) and returns the number of classes.
 */
unsigned conf_geometry(const struct conf *c, uint64_t pool_bytes, struct hak_class_geom *g);
/* Slots a watermark percentage of nslots means: at least 1 for high. */
uint32_t conf_watermark(unsigned pct, uint32_t nslots);

/* Receives a directive that changed, its value in the old and in the new
 * config as the file writes them ("64M", "30s", "(unset)"), and live =
 * whether a running daemon can apply it. */
typedef void (*conf_diff_fn)(void *data, const char *key, const char *was, const char *now,
			     bool live);
/* Calls fn for each directive whose value differs between a and b. */
void conf_diff(const struct conf *a, const struct conf *b, conf_diff_fn fn, void *data);

#endif
