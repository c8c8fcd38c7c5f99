/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * zero_method auto, kept across starts: the figures and the choice are
 * saved in the state directory (systemd's StateDirectory=, passed as
 * $STATE_DIRECTORY) under the CPU they were measured on.  The next start on
 * that CPU takes them as they are: the choice does not flip with the noise
 * of another measurement, and the start does not pay for one.
 *
 * The file, one key per line (a new CPU, or removing it, measures again):
 *
 *   cpu Intel(R) Xeon(R) ... , 2 CPUs
 *   gbps 0 12.31 10.02 9.87        (per method, in enum zero_method order)
 *   small_ns 0 95 120 99
 *   large_ns 0 80 71 85
 *   pick rep-stosb nt 1            (small, large, end to end)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "zero.h"

#define CACHE_FILE "zero-method"
#define CACHE_PATH_MAX 4096
#define CACHE_LINE_MAX 512

int zero_cache_cpu(char *buf, size_t len)
{
	char line[CACHE_LINE_MAX], model[CACHE_LINE_MAX] = "unknown CPU";
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	FILE *f = fopen("/proc/cpuinfo", "re");

	while (f && fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');

		if (colon && strncmp(line, "model name", strlen("model name")) == 0) {
			snprintf(model, sizeof(model), "%s", colon + 1 + strspn(colon + 1, " \t"));
			model[strcspn(model, "\n")] = '\0';
			break;
		}
	}
	if (f)
		fclose(f);
	snprintf(buf, len, "%s, %ld CPUs", model, ncpu);
	return 0;
}

static void cache_path(char *path, const char *dir)
{
	snprintf(path, CACHE_PATH_MAX, "%s/" CACHE_FILE, dir);
}

static void write_row(FILE *f, const char *key, const double v[ZERO_METHOD_NR])
{
	fprintf(f, "%s", key);
	for (int m = 0; m < ZERO_METHOD_NR; m++)
		fprintf(f, " %.2f", v[m]);
	fprintf(f, "\n");
}

int zero_cache_save(const char *dir, const char *cpu, const struct zero_pick *p)
{
	char path[CACHE_PATH_MAX], tmp[CACHE_PATH_MAX + sizeof(".new")];
	FILE *f;
	int r = 0;

	cache_path(path, dir);
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	f = fopen(tmp, "we");
	if (!f)
		return -errno;
	fprintf(f, "cpu %s\n", cpu);
	write_row(f, "gbps", p->gbps);
	write_row(f, "small_ns", p->small_ns);
	write_row(f, "large_ns", p->large_ns);
	fprintf(f, "pick %s %s %d\n", zero_method_name(p->small), zero_method_name(p->large),
		p->end_to_end);
	if (fclose(f) != 0 || rename(tmp, path) < 0) {
		r = -errno;
		unlink(tmp);
	}
	return r;
}

static int read_row(const char *line, const char *key, double v[ZERO_METHOD_NR])
{
	size_t klen = strlen(key);
	const char *s = line + klen;
	char *end;

	if (strncmp(line, key, klen) != 0 || *s != ' ')
		return -EINVAL;
	for (int m = 0; m < ZERO_METHOD_NR; m++) {
		v[m] = strtod(s, &end);
		if (end == s || v[m] < 0)
			return -EINVAL;
		s = end;
	}
	return 0;
}

static int read_pick(const char *line, struct zero_pick *p)
{
	char small[32], large[32];
	int e2e, ms, ml;

	if (sscanf(line, "pick %31s %31s %d", small, large, &e2e) != 3)
		return -EINVAL;
	ms = zero_method_parse(small);
	ml = zero_method_parse(large);
	if (ms <= ZERO_AUTO || ml <= ZERO_AUTO || !zero_method_supported(ms) ||
	    !zero_method_supported(ml))
		return -EINVAL;
	p->small = ms;
	p->large = ml;
	p->end_to_end = e2e != 0;
	return 0;
}

/* Reads the file's lines in order into q. */
static int read_cache(FILE *f, const char *cpu, struct zero_pick *q)
{
	char line[CACHE_LINE_MAX];
	static const char *const rows[] = {"gbps", "small_ns", "large_ns"};
	double *dst[] = {q->gbps, q->small_ns, q->large_ns};

	if (!fgets(line, sizeof(line), f) || strncmp(line, "cpu ", strlen("cpu ")) != 0)
		return -EINVAL;
	line[strcspn(line, "\n")] = '\0';
	if (strcmp(line + strlen("cpu "), cpu) != 0)
		return -ESTALE;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		if (!fgets(line, sizeof(line), f) || read_row(line, rows[i], dst[i]) < 0)
			return -EINVAL;
	if (!fgets(line, sizeof(line), f))
		return -EINVAL;
	return read_pick(line, q);
}

int zero_cache_load(const char *dir, const char *cpu, struct zero_pick *p)
{
	char path[CACHE_PATH_MAX];
	struct zero_pick q = {0};
	FILE *f;
	int r;

	cache_path(path, dir);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	r = read_cache(f, cpu, &q);
	fclose(f);
	if (r < 0)
		return r;
	q.cached = true;
	*p = q;
	return 0;
}
