/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The setups of `hakbench apps`, where their libraries are, and the
 * environment of each child: the parent's, without any variable that
 * would change an allocator (so that each runs on its defaults unless the
 * row says otherwise), plus the row's own LD_PRELOAD, MALLOC_CONF and
 * HAK_MODE.
 */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apps.h"

#ifndef JEMALLOC_SO
#define JEMALLOC_SO "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
#endif
#ifndef HAK_LIBDIR
#define HAK_LIBDIR "/usr/local/lib"
#endif
#ifndef HAK_PKGLIBEXECDIR
#define HAK_PKGLIBEXECDIR "/usr/local/libexec/hakzerod"
#endif
#define ADAPTER_SO "libhakjemalloc.so"
#define ADAPTER_SONAME "libhakjemalloc.so.0"
#define TCMALLOC_SONAME "libtcmalloc_minimal.so.4"
#define MIMALLOC_SONAME "libmimalloc.so.2"
#define WORKLOAD_PROG "hakbench-workload"
/* Debian's interpreter: python3-numpy is installed for it, not for
 * another python3 that may come first in PATH. */
#define PYTHON_DEFAULT "/usr/bin/python3"
#define FRUGAL_CONF "MALLOC_CONF=dirty_decay_ms:0,muzzy_decay_ms:0"

const struct apps_setup_info apps_setups[SETUP_NR] = {
	[SETUP_GLIBC] = {"glibc", true, false, false, false, NULL},
	[SETUP_JEMALLOC] = {"jemalloc", true, false, false, false, "jemalloc"},
	[SETUP_JEMALLOC_AA] = {"jemalloc (A/A control)", false, false, false, false, "jemalloc"},
	[SETUP_HAK_SHARED] = {"jemalloc+hak shared", false, true, true, false, "jemalloc"},
	[SETUP_HAK_LOCAL] = {"jemalloc+hak local", false, false, true, false, "jemalloc"},
	[SETUP_TCMALLOC] = {"tcmalloc", true, false, false, false, "tcmalloc"},
	[SETUP_MIMALLOC] = {"mimalloc", true, false, false, false, "mimalloc"},
	[SETUP_JEMALLOC_D0] = {"jemalloc decay 0", false, false, false, true, "jemalloc"},
	[SETUP_HAK_SHARED_D0] = {"jemalloc+hak shared decay 0", false, true, true, true,
				 "jemalloc"},
};

/* Cleared in every child: what the row does not set must not come from
 * the caller's shell. */
static const char *const cleared_prefixes[] = {
	"LD_PRELOAD=", "MALLOC_",   "_RJEM_MALLOC_CONF=", "JE_MALLOC_CONF=",
	"HAK_",	       "MIMALLOC_", "TCMALLOC_",	  "GLIBC_TUNABLES=",
};

#define NR_CLEARED (sizeof(cleared_prefixes) / sizeof(cleared_prefixes[0]))

static bool readable(const char *path)
{
	return access(path, R_OK) == 0;
}

static void path_env(char *out, size_t len, const char *env, const char *fallback)
{
	const char *v = getenv(env);

	snprintf(out, len, "%s", v && *v ? v : fallback);
}

/* name next to this program (uninstalled, libtool keeps the real one in
 * .libs/), under sub/ of its directory or of the one above; else false. */
static bool find_near(const struct apps_ctx *c, const char *sub, const char *name, char *out,
		      size_t len)
{
	static const char *const ups[] = {"", "/.."};
	char dir[PATH_MAX - 64];

	if (snprintf(dir, sizeof(dir), "%s", c->exe) >= (int)sizeof(dir))
		return false;
	dirname(dir);
	for (size_t i = 0; i < sizeof(ups) / sizeof(ups[0]); i++) {
		snprintf(out, len, "%s%s/%s%s", dir, ups[i], sub, name);
		if (access(out, X_OK) == 0 || (!*sub && readable(out)))
			return true;
	}
	return false;
}

static void find_libraries(struct apps_ctx *c)
{
	char libdir[PATH_MAX - 64], tc[PATH_MAX], mi[PATH_MAX];

	path_env(c->jemalloc, sizeof(c->jemalloc), "HAKBENCH_JEMALLOC", JEMALLOC_SO);
	/* tcmalloc and mimalloc: in the directory of the system jemalloc. */
	snprintf(libdir, sizeof(libdir), "%s", JEMALLOC_SO);
	dirname(libdir);
	snprintf(tc, sizeof(tc), "%s/%s", libdir, TCMALLOC_SONAME);
	snprintf(mi, sizeof(mi), "%s/%s", libdir, MIMALLOC_SONAME);
	path_env(c->tcmalloc, sizeof(c->tcmalloc), "HAKBENCH_TCMALLOC", tc);
	path_env(c->mimalloc, sizeof(c->mimalloc), "HAKBENCH_MIMALLOC", mi);
	if (getenv("HAKBENCH_ADAPTER") && *getenv("HAKBENCH_ADAPTER"))
		path_env(c->adapter, sizeof(c->adapter), "HAKBENCH_ADAPTER", "");
	else if (!find_near(c, "", ADAPTER_SO, c->adapter, sizeof(c->adapter)) &&
		 !find_near(c, ".libs/", ADAPTER_SO, c->adapter, sizeof(c->adapter)))
		snprintf(c->adapter, sizeof(c->adapter), "%s/%s", HAK_LIBDIR, ADAPTER_SONAME);
}

/* hakbench-workload: $HAKBENCH_WORKLOAD, the build tree, the installed one. */
static void find_programs(struct apps_ctx *c)
{
	if (getenv("HAKBENCH_WORKLOAD") && *getenv("HAKBENCH_WORKLOAD"))
		path_env(c->workload, sizeof(c->workload), "HAKBENCH_WORKLOAD", "");
	else if (!find_near(c, "bench/apps/", WORKLOAD_PROG, c->workload, sizeof(c->workload)))
		snprintf(c->workload, sizeof(c->workload), "%s/%s", HAK_PKGLIBEXECDIR,
			 WORKLOAD_PROG);
	path_env(c->python, sizeof(c->python), "HAKBENCH_PYTHON", PYTHON_DEFAULT);
}

/* The allocator library a setup preloads (before the adapter), or NULL. */
static const char *setup_lib(const struct apps_ctx *c, const struct apps_setup_info *si)
{
	if (!si->lib)
		return NULL;
	if (strcmp(si->lib, "tcmalloc") == 0)
		return c->tcmalloc;
	return strcmp(si->lib, "mimalloc") == 0 ? c->mimalloc : c->jemalloc;
}

void apps_find(struct apps_ctx *c)
{
	ssize_t n = readlink("/proc/self/exe", c->exe, sizeof(c->exe) - 1);

	c->exe[n > 0 ? n : 0] = '\0';
	find_libraries(c);
	find_programs(c);
	for (int s = 0; s < SETUP_NR; s++) {
		const struct apps_setup_info *si = &apps_setups[s];
		const char *lib = setup_lib(c, si);

		if (lib && !readable(lib))
			c->skip[s] = strcmp(si->lib, "tcmalloc") == 0
					     ? "skipped: not installed (libtcmalloc-minimal4)"
				     : strcmp(si->lib, "mimalloc") == 0
					     ? "skipped: not installed (libmimalloc2.0)"
					     : "skipped: not installed (libjemalloc2)";
		else if (si->adapter && !readable(c->adapter))
			c->skip[s] = "skipped: libhakjemalloc not found";
		else if (si->shared && !c->daemon)
			c->skip[s] = "skipped: no hakzerod answers";
	}
}

static bool cleared(const char *var)
{
	for (size_t i = 0; i < NR_CLEARED; i++)
		if (strncmp(var, cleared_prefixes[i], strlen(cleared_prefixes[i])) == 0)
			return true;
	return false;
}

void apps_env_clean(struct apps_env *e)
{
	extern char **environ;

	e->n = 0;
	for (char **v = environ; *v && e->n < APPS_MAX_ENV - 4; v++)
		if (!cleared(*v))
			e->v[e->n++] = *v;
	e->v[e->n] = NULL;
}

static void env_add(struct apps_env *e, const char *var)
{
	e->v[e->n++] = (char *)var;
	e->v[e->n] = NULL;
}

void apps_env_build(const struct apps_ctx *c, enum apps_setup s, struct apps_env *e)
{
	const struct apps_setup_info *si = &apps_setups[s];
	const char *lib = setup_lib(c, si);

	apps_env_clean(e);
	if (lib) {
		snprintf(e->preload, sizeof(e->preload), "LD_PRELOAD=%s%s%s", lib,
			 si->adapter ? " " : "", si->adapter ? c->adapter : "");
		env_add(e, e->preload);
	}
	if (si->frugal)
		env_add(e, FRUGAL_CONF);
	if (si->adapter)
		env_add(e, si->shared ? "HAK_MODE=shared" : "HAK_MODE=local");
}
