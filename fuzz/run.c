/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A fuzz harness without libFuzzer, for `make check` in every build: feeds
 * it each file of its seed corpus (fuzz/corpus/NAME/) and of its
 * regressions (fuzz/regressions/NAME/: inputs that once made it fail), so
 * that what the fuzzer found stays fixed.  Arguments, when given, are the
 * files or directories to run instead.  Exit 0 pass, 1 fail (a failing
 * input aborts, naming itself first).
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

#ifndef FUZZ_NAME
#error "FUZZ_NAME: the harness's directory name under fuzz/corpus"
#endif

/* Harnesses without set-up need not define it. */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	return 0;
}

/* Reads a whole file into a buffer of exactly its size: a harness reading
 * past the input's end then trips the sanitizers, as under libFuzzer. */
static uint8_t *read_file(const char *path, size_t *size)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	struct stat st;

	if (!f)
		return NULL;
	if (fstat(fileno(f), &st) == 0 && (buf = malloc(st.st_size ? (size_t)st.st_size : 1)))
		*size = fread(buf, 1, (size_t)st.st_size, f);
	if (buf && ferror(f)) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

static int run_file(const char *path)
{
	size_t size = 0;
	uint8_t *buf = read_file(path, &size);

	if (!buf) {
		fprintf(stderr, "run-%s: %s: %s\n", FUZZ_NAME, path, strerror(errno));
		return -1;
	}
	/* Named before it runs: an input that fails aborts the process. */
	printf("%s\n", path);
	fflush(stdout);
	LLVMFuzzerTestOneInput(buf, size);
	free(buf);
	return 0;
}

static int skip_dots(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

/* Runs every file of dir in name order.  Returns the count or -1. */
static int run_dir(const char *dir)
{
	struct dirent **names;
	int n = scandir(dir, &names, skip_dots, alphasort), done = 0;

	if (n < 0)
		return -1;
	for (int i = 0; i < n; i++) {
		char path[PATH_MAX];

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
		if (done >= 0 && strcmp(names[i]->d_name, "README") != 0)
			done = run_file(path) < 0 ? -1 : done + 1;
		free(names[i]);
	}
	free(names);
	return done;
}

static int run_path(const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return -1;
	return S_ISDIR(st.st_mode) ? run_dir(path) : run_file(path) < 0 ? -1 : 1;
}

/* The committed inputs: seeds must be there, regressions may not be yet. */
static int run_committed(void)
{
	const char *top = getenv("top_srcdir");
	char corpus[PATH_MAX], regressions[PATH_MAX];
	int n, m;

	if (!top)
		top = ".";
	snprintf(corpus, sizeof(corpus), "%s/fuzz/corpus/%s", top, FUZZ_NAME);
	snprintf(regressions, sizeof(regressions), "%s/fuzz/regressions/%s", top, FUZZ_NAME);
	n = run_dir(corpus);
	if (n <= 0) {
		fprintf(stderr, "run-%s: no seed inputs in %s\n", FUZZ_NAME, corpus);
		return 1;
	}
	m = run_dir(regressions);
	if (m < 0 && errno != ENOENT) {
		fprintf(stderr, "run-%s: %s: %s\n", FUZZ_NAME, regressions, strerror(errno));
		return 1;
	}
	printf("run-%s: %d seed and %d regression inputs pass\n", FUZZ_NAME, n, m < 0 ? 0 : m);
	return 0;
}

int main(int argc, char **argv)
{
	LLVMFuzzerInitialize(&argc, &argv);
	if (argc < 2)
		return run_committed();
	for (int i = 1; i < argc; i++) {
		if (run_path(argv[i]) < 0) {
			fprintf(stderr, "run-%s: %s: %s\n", FUZZ_NAME, argv[i], strerror(errno));
			return 1;
		}
	}
	return 0;
}
